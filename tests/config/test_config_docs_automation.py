"""The Prefect automation shown in docs/operations.md (section 8.6) is one Prefect accepts:
parsed by Prefect's own automation model, as ``prefect automation create --from-file`` does."""

import re
from pathlib import Path

import yaml

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_the_documented_automation_is_valid_for_prefect():
    from prefect.events.schemas.automations import AutomationCore

    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("### 8.6"):text.index("### 8.7")]
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", section, re.S) if "trigger:" in b]
    automation = AutomationCore.model_validate(yaml.safe_load(block))
    assert automation.trigger.expect == {"prefect.flow-run.Failed", "prefect.flow-run.Paused"}
    assert automation.actions[0].type == "send-notification"
