"""Types where they belong (issue 14 item 3): ``reports/`` sits below ``tasks/`` and
``flows/`` (it renders what they decided and imports none of them), the GC status types
belong to the driver port, and one function makes every artifact key.

Read from the source with ``ast`` (what each module imports, where each name is defined),
so a new import that inverts the layering fails here rather than in review.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import acr_gc

PACKAGE = Path(acr_gc.__file__).resolve().parent


def _modules(folder: str = "") -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _defined(name: str) -> list[str]:
    return [str(path.relative_to(PACKAGE)) for path in _modules()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name]


def test_reports_import_neither_tasks_nor_flows():
    for path in _modules("reports"):
        upward = {m for m in _imports(path) if m.startswith(("acr_gc.tasks", "acr_gc.flows"))}
        assert not upward, f"{path.relative_to(PACKAGE)} imports {sorted(upward)}"


def test_the_plan_result_is_a_rule_and_gc_status_belongs_to_the_driver_port():
    assert _defined("PlanResult") == ["rules/plan_result.py"]
    assert _defined("GcStatus") == ["gc/driver.py"]
    assert all(m.startswith("acr_gc.rules") for m in _imports(PACKAGE / "rules/plan_result.py") if m.startswith("acr_gc"))


def test_one_artifact_key_for_every_artifact():
    from acr_gc.reports.artifacts import artifact_key

    assert _defined("artifact_key") == ["reports/artifacts.py"]
    for instance_id in ("cri-demo", "cri--x", "CRI_x", "cri.x", "-cri-"):
        key = artifact_key("report", instance_id)
        assert re.fullmatch(r"[a-z0-9-]+", key) and key.startswith("acr-gc-report-"), key
    assert artifact_key("report", "cri-demo") == "acr-gc-report-cri-demo"
    keys = {artifact_key("plan", i) for i in ("cri--x", "cri-x", "CRI-X", "cri_x")}
    assert len(keys) == 4  # ids that differ never share a key's history
