"""Reproducible installs (issue 14 item 8): constraints.txt pins what scripts/setup.sh
installs, and stays in step with pyproject.toml's ranges.

Every dependency pyproject.toml names (extras included) must be pinned exactly once, at a
version its range allows; acr-gc itself is never pinned; and scripts/setup.sh installs
with the constraints. Read with ``packaging``, as pip reads them. When this fails after a
range changed, run ``bash scripts/refresh-constraints.sh`` and commit constraints.txt.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, list[Version]]:
    pins: dict[str, list[Version]] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        [spec] = list(requirement.specifier)
        assert spec.operator == "==", f"constraints.txt pins exactly: {line!r}"
        pins.setdefault(canonicalize_name(requirement.name), []).append(Version(spec.version))
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    listed = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return [Requirement(r) for r in listed]


def test_every_declared_dependency_is_pinned_once_inside_its_range():
    pins = _pins()
    assert all(len(versions) == 1 for versions in pins.values()), {n: v for n, v in pins.items() if len(v) > 1}
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not pinned in constraints.txt: run scripts/refresh-constraints.sh"
        [version] = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"constraints.txt pins {name}=={version}, outside pyproject.toml's {requirement}: "
            "run scripts/refresh-constraints.sh")
        for extra in requirement.extras:  # psycopg[binary] → psycopg-binary pinned too
            assert canonicalize_name(f"{name}-{extra}") in pins, f"{requirement}: {name}-{extra} is not pinned"


def test_acr_gc_itself_is_not_pinned_and_setup_installs_with_the_constraints():
    assert "acr-gc" not in _pins()
    setup = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    assert "pip install" in setup and "-c constraints.txt" in setup
