"""``acr-gc forecast`` refuses a bad ``--rules`` file with one clear line and exit 2, before any call."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from acr_gc.cli import app


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("- just a list\n", "expected a mapping of variant names to lists of rules"),
        ("strict:\n  - {scope: EVERYWHERE}\n", "scope must be INSTANCE, NAMESPACE or REPO"),
        ("strict:\n  - {scope: INSTANCE, retention_tag_count: -1}\n", "retention_tag_count must be a whole number"),
        ("strict:\n  - {scope: INSTANCE, keep: 3}\n", "unknown key 'keep'"),
        ("strict: [1, 2]\n", "each rule is a mapping"),
    ],
)
def test_bad_rules_file_exits_2_with_one_line(tmp_path, content, message):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"target": {"instance_id": "cri-x", "bucket": "b-x"},
                                      "ledger": {"url": f"sqlite:///{tmp_path / 'l.db'}"},
                                          "freeze": {"principals": ["acs:ram::1:user/pusher"]}}))
    rules = tmp_path / "rules.yaml"
    rules.write_text(content)
    result = CliRunner().invoke(app, ["forecast", "--config", str(config), "--rules", str(rules)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and str(rules) in lines[0]
