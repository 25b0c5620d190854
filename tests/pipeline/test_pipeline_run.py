"""`reclaim_storage` end to end on the hand-worked instance cri-run, and the freeze seen by
another principal while GC runs on cri-frz.

Real parts only: the emulator as a subprocess (one per module, re-loaded per test), the
real ACR and OSS SDKs, the flow on the session's real Prefect server (in this process, or
`acr-gc run` as a subprocess). The retained set, the deleted tags and how to regenerate
them are worked out by hand in pipeline_support.py; the emulator's truth is the second,
independent witness (its GC has its own retention code).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from emulator_kit import new_emulator
from pipeline_support import (
    BASE_LAYER_SIZE,
    FRZ_RETAINED,
    OTHER_POLICY,
    RUN_EXPIRED,
    RUN_OWN,
    RUN_RETAINED,
    RUN_UPDATED,
    WRITER_AK,
    WRITER_SECRET,
    cli_args,
    cli_env,
    config_dict,
    csv_rows,
    dataset,
    digest,
    ledger_rows,
    oss_sdk,
    run_flow,
    sdk_bucket_stat,
    sdk_get_object,
    sdk_get_policy,
    sdk_put_object,
    summary_of,
    write_config,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def emu():
    # 5 tags per (real) second: slow enough to watch the freeze while GC runs on cri-frz
    # (30 expired tags, ~6 s), quick enough for cri-run (7 expired tags, ~1.4 s).
    with new_emulator(dataset(), gc_tags_per_second=5) as process:
        yield process


@pytest.mark.parametrize("policy", [OTHER_POLICY, None], ids=["policy-with-other-statements", "no-policy"])
def test_full_run_leaves_the_handworked_retained_set(emu, prefect_api_url, tmp_path, monkeypatch, policy):
    emu.load(dataset(run_policy=policy))
    before = emu.truth()
    assert before["buckets"]["cri-run-storage"]["policy"] == policy  # the dataset is what we think

    config = config_dict((emu.acr_endpoint, emu.oss_endpoint), tmp_path, "cri-run", "cri-run-storage")
    state, folder = run_flow(config, monkeypatch)
    assert state.is_completed(), state.message

    summary = summary_of(folder)
    assert summary["state"] == "GC_DONE"
    assert summary["gc"]["state"] == "SUCCESS"
    assert summary["gc"]["tags_deleted"] == len(RUN_EXPIRED) == 7
    assert summary["plan"]["tags_total"] == 7 + 5 + 4 + 1  # web, api, base, tools; the chart is no tag
    assert summary["plan"]["tags_expired"] == 7
    assert summary["plan"]["tags_unregenerable"] == 0
    # Freed digests, image size (10_000 base + own layer) once each: W3 10_300, W5 10_500,
    # A1 11_100, A2 11_200, B1 12_100 = 55_200 (W1 and B2 stay referenced by main, stable).
    # That upper bound counts the shared base layer 5 times and exceeds the whole bucket,
    # so it is capped at the bucket's size: base 10_000 + own layers 18_300 + 15 manifests
    # x 1_024 + 17 tag links x 71 + exports/report.csv 500 + the chart 5_000 = 50_367.
    assert summary["plan"]["bytes_expected"] == min(55_200, 50_367)
    assert summary["plan"]["bytes_expected_is_upper_bound"] is True
    checks = dict(summary["checks"])
    assert "any-retains/count-or-match/full" in checks.pop("readings_consistent")  # issue 11: the reading played
    assert checks == {"unexpected_deletions": 0, "missed_deletions": 0, "freeze_restored": True}
    assert state.result(raise_on_failure=False)["checks"] == summary["checks"]  # the state's data is the summary

    # Tags left: the hand-worked retained set, and the emulator's truth says the same.
    after = emu.truth()
    assert after["instances"]["cri-run"]["tags"] == RUN_RETAINED
    tasks = after["instances"]["cri-run"]["gc_tasks"]
    assert [(t["state"], t["tags_deleted"]) for t in tasks] == [("SUCCESS", 7)]
    assert summary["gc"]["task_id"] == tasks[0]["task_id"]
    # The other instances were not touched.
    for other in ("cri-frz", "cri-nowl", "cri-gate", "cri-never"):
        assert after["instances"][other] == before["instances"][other]

    # The bucket policy afterwards equals the original: JSON-equal, or still none at all.
    assert after["buckets"]["cri-run-storage"]["policy"] == policy
    ops_view = sdk_get_policy(oss_sdk(emu.oss_endpoint, WRITER_AK, WRITER_SECRET), "cri-run-storage")
    assert ops_view == (policy if policy is not None else "NoSuchBucketPolicy")

    # The ledger agrees with summary.json.
    rows = ledger_rows(config, folder.name)
    assert rows["run"].state == "GC_DONE"
    assert json.loads(rows["run"].checks_json)["unexpected_deletions"] == 0
    assert json.loads(rows["run"].checks_json)["missed_deletions"] == 0
    [freeze] = rows["freezes"]
    assert freeze.status == "restored" and freeze.had_policy is (policy is not None)
    assert (json.loads(freeze.original_policy) if freeze.original_policy else None) == policy
    assert [(t.task_id, t.state, t.tags_deleted) for t in rows["gc_tasks"]] == [(tasks[0]["task_id"], "SUCCESS", 7)]

    # deleted_tags.csv: exactly the expired tags, with digest, size, time and the way back.
    rows = csv_rows(folder / "deleted_tags.csv")
    assert [(r["namespace"], r["repo"], r["tag"], r["digest"], int(r["size"]), r["updated"],
             r["regenerable_by"], r["regenerate_from"]) for r in rows] == [
        (ns, rp, tg, digest(image), BASE_LAYER_SIZE + RUN_OWN[image],
         RUN_UPDATED[(ns, rp, tg)], how, source)
        for ns, rp, tg, image, how, source in RUN_EXPIRED
    ]


def test_freeze_denies_another_principals_writes_while_gc_runs(emu, prefect_api_url, tmp_path):
    """cri-frz: 30 expired tags at 5 tags/s. While the task is RUNNING, the writer (a
    principal other than the run's) cannot PutObject but can read; after thaw it can write."""
    emu.load(dataset())
    config = config_dict((emu.acr_endpoint, emu.oss_endpoint), tmp_path, "cri-frz", "cri-frz-storage",
                         gc={"poll_interval": 0.5})
    path = write_config(config, tmp_path / "frz.yaml")
    writer = oss_sdk(emu.oss_endpoint, WRITER_AK, WRITER_SECRET)

    # Before the run the writer can write (so a refusal later is the freeze's doing).
    sdk_put_object(writer, "cri-frz-storage", "uploads/before.bin", b"before")

    proc = subprocess.Popen(cli_args("run", "--config", str(path)), env=cli_env(prefect_api_url),
                            cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        running = None
        while time.monotonic() < deadline and proc.poll() is None:
            tasks = emu.truth()["instances"]["cri-frz"]["gc_tasks"]
            if tasks and tasks[0]["state"] == "RUNNING" and tasks[0]["tags_deleted"] < 25:
                running = tasks[0]
                break
            time.sleep(0.1)
        assert running is not None, f"GC never seen RUNNING: {proc.communicate(timeout=60)}"

        # Frozen: the writer's PutObject is refused with 403 AccessDenied ...
        with pytest.raises(Exception) as refused:
            sdk_put_object(writer, "cri-frz-storage", "uploads/during.bin", b"during")
        assert getattr(refused.value, "code", None) == "AccessDenied", refused.value
        assert refused.value.data["statusCode"] == 403
        # ... while reads work: GetObject and GetBucketStat.
        assert sdk_get_object(writer, "cri-frz-storage", "uploads/before.bin") == b"before"
        stat = sdk_bucket_stat(writer, "cri-frz-storage")
        assert int(stat["ObjectCount"]) > 0
        # and the task was still running when we looked (the refusal was during GC)
        assert emu.truth()["instances"]["cri-frz"]["gc_tasks"][0]["state"] == "RUNNING"
        frozen_policy = emu.truth()["buckets"]["cri-frz-storage"]["policy"]
        assert frozen_policy is not None and len(frozen_policy["Statement"]) == 1

        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, (out, err)
    folder = Path(out.strip().splitlines()[-1])
    assert summary_of(folder)["state"] == "GC_DONE"
    after = emu.truth()
    assert after["instances"]["cri-frz"]["tags"] == FRZ_RETAINED
    assert after["instances"]["cri-frz"]["gc_tasks"][0]["state"] == "SUCCESS"
    # Thawed: no policy again (there was none), and the writer can write and read.
    assert after["buckets"]["cri-frz-storage"]["policy"] is None
    sdk_put_object(writer, "cri-frz-storage", "uploads/after.bin", b"after")
    assert sdk_get_object(writer, "cri-frz-storage", "uploads/after.bin") == b"after"
    assert "uploads/during.bin" not in {o["key"] for o in emu.objects("cri-frz-storage")["current"]}
