"""The ``approval`` and ``notify`` sections (issue 15): defaults, and one clear line for a
bad value (CLI exit 2), like every other section."""

from datetime import timedelta

import pytest
import yaml

from acr_gc.config import ConfigError, load_config

BASE = {"target": {"instance_id": "cri-x", "bucket": "b-x"}, "freeze": {"principals": ["acs:ram::1:user/ci"]}}


def _load(tmp_path, **sections):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**BASE, **sections}), encoding="utf-8")
    return load_config(path)


def test_defaults_ask_nobody_and_notify_nobody(tmp_path):
    config = _load(tmp_path)
    assert config.approval.required is False
    assert config.approval.timeout == timedelta(days=2)
    assert config.approval.approvers == []
    assert config.notify.block is None


def test_values_as_written(tmp_path):
    config = _load(tmp_path, approval={"required": True, "timeout": "PT4H", "approvers": ["alice"]},
                   notify={"block": "custom-webhook/ops-alerts"})
    assert (config.approval.required, config.approval.timeout, config.approval.approvers) == (
        True, timedelta(hours=4), ["alice"])
    assert config.notify.block == "custom-webhook/ops-alerts"
    assert _load(tmp_path, notify={"block": "ops-alerts"}).notify.block == "ops-alerts"


@pytest.mark.parametrize("sections, expected", [
    ({"approval": {"required": True, "timeout": 0}}, "approval.timeout"),
    ({"approval": {"requred": True}}, "approval.requred"),
    ({"approval": {"approvers": "alice"}}, "approval.approvers"),
    ({"notify": {"block": "Ops Alerts"}}, "notify.block"),
    ({"notify": {"block": "a/b/c"}}, "notify.block"),
])
def test_bad_values_are_one_clear_line(tmp_path, sections, expected):
    with pytest.raises(ConfigError) as error:
        _load(tmp_path, **sections)
    message = str(error.value)
    assert expected in message and "\n" not in message


def test_status_bad_input_is_one_line_and_exit_2(tmp_path):
    from typer.testing import CliRunner

    from acr_gc.cli import app

    runner = CliRunner()
    neither = runner.invoke(app, ["status"])
    assert neither.exit_code == 2 and "give --config FILE or --ledger URL" in neither.output
    bad = runner.invoke(app, ["status", "--ledger", "nonsense://x"])
    assert bad.exit_code == 2 and "--ledger:" in bad.output
    empty = runner.invoke(app, ["status", "--ledger", f"sqlite:///{tmp_path / 'ledger.db'}", "--json"])
    assert empty.exit_code == 0, empty.output
    import json

    assert json.loads(empty.output)["instances"] == []
