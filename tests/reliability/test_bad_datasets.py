"""A malformed emulator dataset is refused whole, with one line naming the file and the
field, and never half-loaded: ``acr-gc emulator serve --dataset`` exits 2 without a
traceback, and ``POST /_emulator/load`` answers 400 with a JSON error while the running
emulator keeps exactly the state it had (its truth before equals its truth after, even
after the clock moved and a tag was deleted since its own dataset was loaded).

The cases: not JSON, not UTF-8, nested ten thousand deep, wrong types, missing fields,
unknown keys, a tag naming an unknown layer, names given twice (tags, repositories,
charts, instances, buckets, access keys), negative sizes, an instance on an unknown
bucket, and 50 MB of random bytes (generated in a temporary folder, never kept).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from acr_gc.emulator.dataset import load_dataset
from emulator_kit import new_emulator
from emulator_kit import AK, SECRET, make_acr_client

ROOT = Path(__file__).resolve().parents[2]
LAYER = "sha256:" + "a" * 64
GOOD = {
    "clock": "2026-11-01T00:00:00Z",
    "credentials": [{"access_key_id": AK, "access_key_secret": SECRET, "principal": "uid-ops"}],
    "layers": {LAYER: 1000},
    "instances": [{
        "instance_id": "cri-ds", "name": "cri-ds", "bucket": "cri-ds-storage", "namespaces": ["apps"],
        "repositories": [{"namespace": "apps", "name": "web", "tags": [
            {"tag": "v1", "digest": "sha256:" + "1" * 64, "updated": "2026-10-01T00:00:00Z", "layers": [LAYER]},
            {"tag": "v2", "digest": "sha256:" + "2" * 64, "updated": "2026-10-02T00:00:00Z", "layers": [LAYER]},
        ]}],
        "charts": [{"namespace": "apps", "name": "charts", "versions": [{"version": "0.1.0", "size": 10}]}],
    }],
    "buckets": [{"name": "cri-ds-storage", "versioning": "Enabled",
                 "extra_objects": [{"key": "exports/a.csv", "size": 5}]}],
}


def _spoil(change) -> dict:
    data = copy.deepcopy(GOOD)
    change(data)
    return data


def _inst(data: dict) -> dict:
    return data["instances"][0]


def _repo(data: dict) -> dict:
    return _inst(data)["repositories"][0]


# (case, the dataset as a dict or raw bytes, the field the line names, a fragment of the reason)
CASES = [
    ("not-json", b"{clock: 2026}", None, "not JSON (line 1 column 2)"),
    ("empty", b"", None, "not JSON (line 1 column 1)"),
    ("not-utf-8", b'{"clock": "2026-11-01T00:00:00Z", "credentials": [], "layers": {"\xff": 1}}', None,
     "not UTF-8 text (byte 0xff at line 1)"),
    ("nested-10000-deep", b"[" * 10_000 + b"]" * 10_000, None, "nested too deeply"),
    ("a-list", b"[]", "(top level)", "valid dictionary"),
    ("clock-not-a-time", _spoil(lambda d: d.update(clock="yesterday")), "clock", "datetime"),
    ("layer-size-text", _spoil(lambda d: d["layers"].update({LAYER: "big"})), f"layers.{LAYER}", "valid integer"),
    ("whitelisted-maybe", _spoil(lambda d: _inst(d).update(gc_whitelisted="maybe")),
     "instances.0.gc_whitelisted", "valid boolean"),
    ("tags-not-a-list", _spoil(lambda d: _repo(d).update(tags={"v1": {}})),
     "instances.0.repositories.0.tags", "valid list"),
    ("missing-bucket", _spoil(lambda d: _inst(d).pop("bucket")), "instances.0.bucket", "Field required"),
    ("missing-credentials", _spoil(lambda d: d.pop("credentials")), "credentials", "Field required"),
    ("missing-digest", _spoil(lambda d: _repo(d)["tags"][0].pop("digest")),
     "instances.0.repositories.0.tags.0.digest", "Field required"),
    ("unknown-key", _spoil(lambda d: _repo(d).update(colour="red")), "instances.0.repositories.0.colour",
     "unknown key"),
    ("empty-tag-name", _spoil(lambda d: _repo(d)["tags"][0].update(tag="")),
     "instances.0.repositories.0.tags.0.tag", "at least 1 character"),
    ("unknown-layer", _spoil(lambda d: _repo(d)["tags"][0].update(layers=["sha256:" + "f" * 64])),
     "(top level)", "tag apps/web:v1 names unknown layer"),
    ("duplicate-tag", _spoil(lambda d: _repo(d)["tags"].append(dict(_repo(d)["tags"][0]))),
     "instances.0.repositories.0", "tag 'v1' given twice"),
    ("duplicate-repo", _spoil(lambda d: _inst(d)["repositories"].append(copy.deepcopy(_repo(d)))),
     "instances.0", "repository apps/web given twice"),
    ("duplicate-chart", _spoil(lambda d: _inst(d)["charts"].append(copy.deepcopy(_inst(d)["charts"][0]))),
     "instances.0", "chart apps/charts given twice"),
    ("duplicate-instance", _spoil(lambda d: d["instances"].append(copy.deepcopy(_inst(d)))),
     "(top level)", "instance 'cri-ds' given twice"),
    ("duplicate-bucket", _spoil(lambda d: d["buckets"].append(copy.deepcopy(d["buckets"][0]))),
     "(top level)", "bucket 'cri-ds-storage' given twice"),
    ("duplicate-access-key", _spoil(lambda d: d["credentials"].append(dict(d["credentials"][0], principal="x"))),
     "(top level)", f"access key {AK!r} given twice"),
    ("negative-layer", _spoil(lambda d: d["layers"].update({LAYER: -1000})), f"layers.{LAYER}",
     "greater than or equal to 0"),
    ("negative-chart", _spoil(lambda d: _inst(d)["charts"][0]["versions"][0].update(size=-1)),
     "instances.0.charts.0.versions.0.size", "greater than or equal to 0"),
    ("negative-object", _spoil(lambda d: d["buckets"][0]["extra_objects"][0].update(size=-5)),
     "buckets.0.extra_objects.0.size", "greater than or equal to 0"),
    ("unknown-bucket", _spoil(lambda d: _inst(d).update(bucket="nowhere")), "(top level)",
     "instance cri-ds names unknown bucket 'nowhere'"),
    ("policy-oss-would-refuse", _spoil(lambda d: d["buckets"][0].update(policy={"Statement": "deny all"})),
     "buckets.0.policy", "no Version"),
    ("repo-in-unknown-namespace", _spoil(lambda d: _repo(d).update(namespace="ops")), "instances.0",
     "names unknown namespace 'ops'"),
]


def _bytes(content) -> bytes:
    return content if isinstance(content, bytes) else json.dumps(content).encode()


@pytest.mark.parametrize("case, content, field, fragment", CASES, ids=[c[0] for c in CASES])
def test_load_dataset_names_file_and_field_in_one_line(tmp_path, case, content, field, fragment):
    path = tmp_path / f"{case}.json"
    path.write_bytes(_bytes(content))
    with pytest.raises(ValueError) as caught:
        load_dataset(path)
    message = str(caught.value)
    assert "\n" not in message, message
    assert message.startswith(f"{path}: " + (f"{field}: " if field else "")), message
    assert fragment in message, message


def test_the_good_dataset_is_good(tmp_path):
    """The cases above spoil one thing each of a dataset that is itself accepted."""
    path = tmp_path / "good.json"
    path.write_text(json.dumps(GOOD), encoding="utf-8")
    assert load_dataset(path).instances[0].instance_id == "cri-ds"


# ---- acr-gc emulator serve --dataset ------------------------------------------------------


@pytest.fixture(scope="module")
def garbage(tmp_path_factory) -> Path:
    """50 MB of random bytes, made here and deleted with the temporary folder."""
    path = tmp_path_factory.mktemp("garbage") / "garbage.json"
    with path.open("wb") as handle:
        for _ in range(50):
            handle.write(os.urandom(2**20))
    return path


def _serve(path: Path) -> tuple[subprocess.CompletedProcess, int]:
    """``acr-gc emulator serve`` on ``path``: the finished process and its peak memory (RSS)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "acr_gc.cli", "emulator", "serve", "--dataset", str(path),
         "--acr-port", "0", "--oss-port", "0", "--registry-port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    peak = 0
    watched = psutil.Process(proc.pid)

    def watch() -> None:
        nonlocal peak
        while proc.poll() is None:
            try:
                peak = max(peak, watched.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    watcher.join()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), peak


SERVE_CASES = ["not-json", "not-utf-8", "nested-10000-deep", "duplicate-repo", "negative-layer", "unknown-layer"]


@pytest.mark.slow
@pytest.mark.parametrize("case", SERVE_CASES + ["50-mb-of-random-bytes"])
def test_serve_exits_2_with_one_line(tmp_path, garbage, case):
    if case in SERVE_CASES:
        _, content, _, fragment = next(c for c in CASES if c[0] == case)
        path = tmp_path / f"{case}.json"
        path.write_bytes(_bytes(content))
    else:
        path, fragment = garbage, "not UTF-8 text"
    started = time.monotonic()
    result, peak = _serve(path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""  # no ready line: nothing is served
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert str(path) in lines[0] and fragment in lines[0], lines[0]
    assert time.monotonic() - started < 20
    assert peak < 400 * 2**20, f"peak RSS {peak / 2**20:.0f} MiB for a {path.stat().st_size / 2**20:.0f} MiB file"


# ---- POST /_emulator/load on a running emulator -------------------------------------------


@pytest.fixture(scope="module")
def emu():
    with new_emulator(GOOD) as process:
        yield process


@pytest.fixture
def moved_on(emu):
    """The emulator moved away from its loaded dataset: three days on, tag v1 deleted. An
    emulator that "restored" its dataset on a failed load would turn the clock back and
    bring the tag back; its truth is what a refused load must leave as it was."""
    from alibabacloud_cr20181201 import models as cr

    emu.load(GOOD)
    emu.advance_clock(3)
    client = make_acr_client(emu.acr_endpoint)
    repo_id = client.list_repository(cr.ListRepositoryRequest(instance_id="cri-ds")).body.repositories[0].repo_id
    client.delete_repo_tag(cr.DeleteRepoTagRequest(instance_id="cri-ds", repo_id=repo_id, tag="v1"))
    before = emu.truth()
    assert before["instances"]["cri-ds"]["tags"] == {"apps/web": ["v2"]}
    return before


def _post_each_and_compare(emu, before: dict, bodies: list[tuple[str, bytes]]) -> None:
    with httpx.Client(base_url=emu.admin_url, timeout=60, trust_env=False) as admin:
        for case, body in bodies:
            response = admin.post("/load", content=body, headers={"content-type": "application/json"})
            assert response.status_code == 400, (case, response.status_code, response.text[:300])
            assert response.json()["error"], case
    after = emu.truth()
    assert {k: v for k, v in after.items() if k != "clock"} == {k: v for k, v in before.items() if k != "clock"}
    clock_moved = (_when(after["clock"]) - _when(before["clock"])).total_seconds()
    assert 0 <= clock_moved < 600  # real time only: never reset to a dataset's clock


@pytest.mark.slow
def test_load_refuses_each_bad_dataset_and_keeps_the_state_it_had(emu, moved_on, garbage):
    bodies = [(case, _bytes(content)) for case, content, _, _ in CASES if case != "nested-10000-deep"]
    _post_each_and_compare(emu, moved_on, bodies + [("50 MB", garbage.read_bytes())])


@pytest.mark.slow
def test_load_refuses_json_nested_too_deeply(emu, moved_on):
    """Python's JSON parser raises RecursionError, not ValueError, on deep nesting."""
    _post_each_and_compare(emu, moved_on, [("nested", b"[" * 10_000 + b"]" * 10_000)])


def _when(iso: str):
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00"))
