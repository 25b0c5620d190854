"""`acr-gc plan` on bad input: exit 2, ONE clear line on stderr, no traceback, no Prefect,
no run folder, and nothing written to the cloud.

The CLI runs as a subprocess against a real emulator, behind recording proxies that show
which actions it called.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from emulator_kit import new_emulator

pytestmark = pytest.mark.slow

AK, SECRET = "LTAI-plan-bad-input", "plan-bad-input-secret"


def _digest(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def _instance(instance_id: str, bucket: str, regexp: str) -> dict:
    return {
        "instance_id": instance_id,
        "name": instance_id,
        "region": "cn-hangzhou",
        "bucket": bucket,
        "namespaces": ["apps"],
        "repositories": [{
            "namespace": "apps", "name": "web",
            "tags": [{"tag": f"t{i}", "digest": _digest(f"{instance_id}-{i}"),
                      "updated": f"2026-10-0{i}T00:00:00Z", "layers": [_digest("layer")]} for i in range(1, 4)],
        }],
        "lifecycle_rules": [{"scope": "REPO", "namespace": "apps", "repo": "web", "retention_tag_count": 1,
                             "tag_regexp": regexp, "enable_delete_tag": True}],
    }


DATASET = {
    "clock": "2026-11-01T00:00:00Z",
    "credentials": [{"access_key_id": AK, "access_key_secret": SECRET, "principal": "ops"}],
    "layers": {_digest("layer"): 1000},
    "instances": [
        _instance("cri-good", "cri-good-storage", "release-.*"),
        _instance("cri-badrule", "cri-badrule-storage", "v("),  # an invalid TagRegexp
    ],
    "buckets": [
        {"name": "cri-good-storage", "versioning": "Enabled", "lifecycle": [], "policy": None, "extra_objects": []},
        {"name": "cri-badrule-storage", "versioning": None, "lifecycle": [], "policy": None, "extra_objects": []},
    ],
}


@pytest.fixture(scope="module")
def world(tmp_path_factory, plan_cli):
    root = tmp_path_factory.mktemp("plan-bad-input")
    with new_emulator(DATASET) as emu, plan_cli.proxy(emu.acr_endpoint, "acr") as acr_proxy, \
            plan_cli.proxy(emu.oss_endpoint, "oss") as oss_proxy:
        yield {"emu": emu, "root": root, "acr": acr_proxy.endpoint, "oss": oss_proxy.endpoint,
               "proxies": (acr_proxy, oss_proxy), "run": plan_cli.run, "env": plan_cli.env}


def _good_config(world, out: Path) -> dict:
    return {
        "target": {"region": "cn-hangzhou", "instance_id": "cri-good", "bucket": "cri-good-storage",
                   "acr_endpoint": world["acr"], "oss_endpoint": world["oss"], "credentials": "chain"},
        "policy": {"allow_unregenerable": ["apps/web:t*"]},
        "freeze": {"principals": ["acs:ram::1234567890:user/ci-pusher"]},
        "report": {"out_dir": str(out)},
        "api": {"retries": 1},
    }


def _manifest(root: Path, text: str) -> str:
    path = root / f"manifest-{hashlib.sha1(text.encode()).hexdigest()[:8]}.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


# (case id, how to spoil the good config, text the one line must contain, secret to use)
CASES = [
    ("malformed-yaml", "RAW:target: [cri-good\n  bucket: x\n", ["is not valid YAML"]),
    ("unknown-field", lambda c, r: c["target"].update(colour="red"), ["target.colour", "unknown key"]),
    ("unknown-top-level-field", lambda c, r: c.update(targets={}), ["targets", "unknown key"]),
    ("invalid-regexp", lambda c, r: c["target"].update(instance_id="cri-badrule", bucket="cri-badrule-storage"),
     ["lifecycle rule", "invalid TagRegexp 'v('", "scope REPO apps/web"]),
    ("manifest-missing", lambda c, r: c["policy"].update(regeneration_manifest=str(r / "nope.csv")),
     ["regeneration manifest", "nope.csv", "cannot read"]),
    ("manifest-bad-header",
     lambda c, r: c["policy"].update(regeneration_manifest=_manifest(r, "ns,repo,glob,source\napps,web,t1,x\n")),
     ["line 1", "header must be exactly namespace,repo,tag_glob,source"]),
    ("manifest-empty-field",
     lambda c, r: c["policy"].update(regeneration_manifest=_manifest(
         r, "namespace,repo,tag_glob,source\napps,web,t1,ci\napps,web,t2,\n")),
     ["line 3", "empty source"]),
    ("allow-list-malformed", lambda c, r: c["policy"].update(allow_unregenerable=["apps-web-t1"]),
     ["policy.allow_unregenerable entry 'apps-web-t1'", "namespace/repo:tag-glob"]),
    ("wrong-secret", "SECRET:not-the-secret", ["credentials rejected", "target.credentials"]),
    ("unknown-instance", lambda c, r: c["target"].update(instance_id="cri-nope"),
     ["instance cri-nope not found", "target.instance_id"]),
    ("unknown-bucket", lambda c, r: c["target"].update(bucket="no-such-bucket"),
     ["bucket no-such-bucket not found", "target.bucket"]),
]


def _comparable_truth(truth: dict) -> dict:
    return {
        "tags": {iid: inst["tags"] for iid, inst in truth["instances"].items()},
        "gc_tasks": {iid: inst["gc_tasks"] for iid, inst in truth["instances"].items()},
        "buckets": {n: {k: b[k] for k in ("live_bytes", "noncurrent_bytes", "objects", "policy")}
                    for n, b in truth["buckets"].items()},
    }


@pytest.mark.parametrize("case, spoil, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(world, case, spoil, expected):
    root: Path = world["root"]
    out = root / f"out-{case}"
    config_path = root / f"{case}.yaml"
    secret = SECRET
    if isinstance(spoil, str) and spoil.startswith("RAW:"):
        config_path.write_text(spoil[4:], encoding="utf-8")
    else:
        config = _good_config(world, out)
        if isinstance(spoil, str) and spoil.startswith("SECRET:"):
            secret = spoil[len("SECRET:"):]
        else:
            spoil(config, root)
        config_path.write_text(yaml.safe_dump(config), encoding="utf-8")

    before = world["emu"].truth()
    seen_before = [len(p.snapshot()) for p in world["proxies"]]
    result = world["run"](["plan", "--config", str(config_path)], world["env"](None, AK, secret))

    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr  # one clear line: no Prefect logs, no traceback
    assert lines[0].startswith("acr-gc: ")
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    for text in expected:
        assert text in lines[0], lines[0]
    assert SECRET not in result.stderr and secret not in result.stderr
    assert result.stdout == ""  # no table, no run folder path
    assert not out.exists()  # no run folder

    after = world["emu"].truth()
    assert _comparable_truth(after) == _comparable_truth(before)
    new = [r for p, n in zip(world["proxies"], seen_before) for r in p.snapshot()[n:]]
    assert all(method in ("GET", "HEAD") for service, method, *_ in new if service == "oss"), new
    assert all(action.startswith(("Get", "List")) for service, *_, action in new if service == "acr"), new
