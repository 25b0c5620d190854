"""Soak: many consecutive ``reclaim_storage`` runs under injected faults, each checked
against the emulator's ground truth.

    .venv/bin/python benchmarks/soak.py [--runs 50] [--fault-rate 0.05] [--repos 20 50]
                                        [--tags 20 60] [--seed 1] [--day-seconds 0.25]
                                        [--out DIR] [--prefect-api-url URL]

One emulator process (``--fault-rate`` on both ports) and one Prefect server serve every
run, so a leak or a state left behind by one run shows in the next. Each run loads a
freshly generated instance (``acr_gc.emulator.generator.generate``, seed ``--seed + i``,
sizes drawn from the ``--repos`` and ``--tags`` ranges), reseeds the fault source, and
runs the real flow in this process with inline sampling over compressed emulated days,
so a healthy run ends COMPLETE.

What a run is judged by, and where each side comes from:

* deletions: the tags gone from ``/_emulator/truth`` between before and after must all be
  expired according to the emulator's own retention (``acr_gc.emulator.retention``,
  evaluated here over the generated dataset), never the planner's answer; the run's
  ``summary.json`` must say 0 unexpected deletions too; other instances keep every tag;
* freezes: every bucket's policy after the run equals its policy before (no statement
  with the ``AcrGcFreeze`` Sid left), and the run's ledger holds no freeze that is not
  restored;
* storage: ``summary.json`` ``before_bytes`` equals the truth's storage before the run and
  ``after_bytes`` the truth's storage at the end (after the release window);
* retries: the adapters' counters (``acr_gc.cloud.calls.stats``) against the emulator's
  ``fault_counts`` and ``request_counts``: every attempt reached the emulator, every
  retry answers an injected fault.

A failed run is reported with its Prefect state and message, never hidden. Every run
leaves ``<out>/run-NN/``: ``run.json`` (seed, sizes, outcome, checks), the truth before and
after, the ledger and the report folder. The last line of standard output is one JSON
object of figures; the exit code is 1 when any invariant failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Prefect reads its settings on import: a private home, no analytics, quiet logs.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="acr-gc-soak-prefect-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"

import pandas as pd  # noqa: E402
import psutil  # noqa: E402

INSTANCE_ID, BUCKET = "cri-gen", "cri-gen-storage"
FREEZE_SID_PREFIX = "AcrGcFreeze"  # DESIGN section 5: the fixed Sid naming the run


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size of a live process (the kernel's high-water mark, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def tag_set(truth: dict, instance_id: str) -> set[str]:
    return {f"{repo}:{tag}" for repo, tags in truth["instances"][instance_id]["tags"].items() for tag in tags}


def emulator_expired(dataset: dict) -> set[str]:
    """The tags the emulator's own retention expires on the target instance: the ground
    truth the run's deletions are judged by, independent of the planner."""
    from acr_gc.emulator.dataset import Dataset
    from acr_gc.emulator.retention import expired_tags
    from acr_gc.emulator.state import EmulatorState

    instance = EmulatorState(Dataset.model_validate(dataset)).registry.instances[INSTANCE_ID]
    return {f"{repo.full_name}:{t.tag}" for repo in instance.repos for t in expired_tags(repo, instance.lifecycle_rules)}


def freeze_sids(policy: dict | None) -> list[str]:
    statements = (policy or {}).get("Statement") or []
    return [s.get("Sid", "") for s in statements if str(s.get("Sid", "")).startswith(FREEZE_SID_PREFIX)]


def ledger_freezes_not_restored(ledger_path: Path) -> int:
    """Freeze rows of the run's ledger still in ``intent`` or ``applied`` (read with SQLAlchemy)."""
    from sqlalchemy import create_engine, func, select

    from acr_gc.ledger.models import Freeze

    if not ledger_path.exists():
        return 0
    engine = create_engine(f"sqlite:///{ledger_path}")
    try:
        with engine.connect() as connection:
            return int(connection.scalar(
                select(func.count()).select_from(Freeze).where(Freeze.status.in_(("intent", "applied")))))
    finally:
        engine.dispose()


def run_config(emu, folder: Path, day_seconds: float) -> dict:
    from acr_gc.emulator.generator import CREDENTIALS

    return {
        "target": {"region": "cn-hangzhou", "instance_id": INSTANCE_ID, "bucket": BUCKET,
                   "acr_endpoint": emu.acr_endpoint, "oss_endpoint": emu.oss_endpoint, "credentials": "chain"},
        # the generated datasets' pushing principal, named as an operator should (not "*")
        "freeze": {"principals": [CREDENTIALS[1]["principal"]]},
        # The soak is about faults, not semantics: the plan is pinned to the emulator's
        # default reading (so deleted_tags.csv is exactly what GC deletes), and small generated
        # instances may lose more than 90 % of their tags (the blast radius has its own tests).
        "policy": {"max_delete_share": 1.0,
                   "semantics": {"combination": "any-retains", "count_regexp": "count-or-match",
                                 "regexp_match": "full"}},
        "gc": {"driver": "emulator", "timeout": 300, "poll_interval": 0.2, "on_timeout": "cancel"},
        "sampling": {"mode": "inline", "interval": 86400, "day_length": day_seconds},
        "report": {"out_dir": str(folder)},
        "ledger": {"url": f"sqlite:///{folder / 'ledger.db'}"},
        "api": {"qps": 200, "concurrency": 4, "retries": 6},
    }


def fault_total(counts: dict) -> int:
    return sum(v for k, v in counts.items() if k.endswith((":unavailable", ":dropped", ":throttled")))


def one_run(index: int, args, emu) -> dict:
    """Load a fresh instance, run the flow on it, and judge the run by the truth."""
    from acr_gc.cloud import calls
    from acr_gc.config import Config
    from acr_gc.emulator.generator import generate
    from acr_gc.flows.reclaim import reclaim_storage
    from acr_gc.reports.files import new_run_id

    seed = args.seed + index
    sizes = random.Random(seed)
    repos, tags_per_repo = sizes.randint(*args.repos), sizes.randint(*args.tags)
    dataset = generate(repos, tags_per_repo, seed=seed)
    folder = args.out / f"run-{index + 1:02d}"
    folder.mkdir(parents=True, exist_ok=True)

    emu.load(dataset)
    emu.set_faults(seed=seed)
    expected = emulator_expired(dataset)
    truth_before = emu.truth()
    (folder / "truth-before.json").write_text(json.dumps(truth_before), encoding="utf-8")

    config = Config.model_validate(run_config(emu, folder, args.day_seconds))
    run_id = new_run_id()
    calls.reset_stats()
    load_1m = os.getloadavg()[0]
    started = time.perf_counter()
    state = reclaim_storage(config, run_id=run_id, return_state=True)
    wall_s = time.perf_counter() - started
    stats = calls.stats()
    truth_after = emu.truth()
    (folder / "truth-after.json").write_text(json.dumps(truth_after), encoding="utf-8")

    summary_path = folder / INSTANCE_ID / run_id / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else None
    deleted = tag_set(truth_before, INSTANCE_ID) - tag_set(truth_after, INSTANCE_ID)
    others_changed = sorted(iid for iid in truth_before["instances"] if iid != INSTANCE_ID
                            and tag_set(truth_before, iid) != tag_set(truth_after, iid))
    policies_changed = sorted(name for name, b in truth_before["buckets"].items()
                              if truth_after["buckets"][name]["policy"] != b["policy"])
    freeze_statements = sum(len(freeze_sids(b["policy"])) for b in truth_after["buckets"].values())
    checks = (summary or {}).get("checks") or {}
    storage = (summary or {}).get("storage") or {}
    faults = {k: truth_after["fault_counts"].get(k, 0) - truth_before["fault_counts"].get(k, 0)
              for k in truth_after["fault_counts"]}
    requests = sum(truth_after["request_counts"].values()) - sum(truth_before["request_counts"].values())
    record = {
        "run": index + 1,
        "seed": seed,
        "repos": repos,
        "tags_per_repo": tags_per_repo,
        "run_id": run_id,
        "prefect_state": state.type.value,
        "message": state.message,
        "state": summary["state"] if summary else None,
        "wall_s": round(wall_s, 3),
        "load_1m": load_1m,
        "tags_before": len(tag_set(truth_before, INSTANCE_ID)),
        "expired_by_emulator": len(expected),
        "deleted_per_truth": len(deleted),
        "unexpected_per_truth": sorted(deleted - expected),
        "missed_per_truth": sorted(expected - deleted),
        "unexpected_per_summary": checks.get("unexpected_deletions"),
        "other_instances_changed": others_changed,
        "policies_changed": policies_changed,
        "freeze_statements_left": freeze_statements,
        "ledger_freezes_not_restored": ledger_freezes_not_restored(folder / "ledger.db"),
        "storage_before": {"summary": storage.get("before_bytes"),
                           "truth": truth_before["buckets"][BUCKET]["storage_bytes"]},
        "storage_after": {"summary": storage.get("after_bytes"),
                          "truth": truth_after["buckets"][BUCKET]["storage_bytes"]},
        "calls": stats.calls,
        "attempts": stats.attempts,
        "retries": stats.retries,
        "failed_calls": stats.failures,
        "retried_kinds": stats.by_kind,
        "calls_by_action": stats.by_action,
        "emulator_requests": requests,
        "emulator_faults": faults,
    }
    complete = record["state"] == "COMPLETE" and record["prefect_state"] == "COMPLETED"
    storage_before_ok = record["storage_before"]["summary"] == record["storage_before"]["truth"]
    storage_after_ok = record["storage_after"]["summary"] == record["storage_after"]["truth"]
    record["storage_matches_truth"] = storage_before_ok and storage_after_ok
    record["ok"] = {
        "complete": complete,
        # a run stopped before its own verification has no count to give; the truth still does
        "no_unexpected_deletions": not record["unexpected_per_truth"] and not others_changed
        and (record["unexpected_per_summary"] == 0 or (record["unexpected_per_summary"] is None and not deleted)),
        # only a run that finished owes every expired tag's deletion
        "no_missed_deletions": not complete or not record["missed_per_truth"],
        "no_freeze_left": not policies_changed and freeze_statements == 0
        and record["ledger_freezes_not_restored"] == 0,
        # after_bytes is the window's end only for a finished run; a failed run's figures
        # must still be right where it gave them
        "storage_matches_truth": record["storage_matches_truth"] if complete
        else storage_before_ok or record["storage_before"]["summary"] is None,
        # every attempt reached the emulator; a retry only ever answers an injected fault,
        # and every fault was retried or ended its call
        "retries_match_faults": requests == stats.attempts
        and stats.retries <= fault_total(faults) <= stats.retries + stats.failures,
    }
    (folder / "run.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    return record


def figures(records: list[dict], args, rss: dict, started_at: str, load: dict) -> dict:
    walls = pd.Series([r["wall_s"] for r in records], dtype=float)
    failed = [{"run": r["run"], "seed": r["seed"], "prefect_state": r["prefect_state"], "state": r["state"],
               "message": r["message"], "checks_failed": [k for k, ok in r["ok"].items() if not ok]}
              for r in records if not all(r["ok"].values())]
    faults_by_kind: dict[str, int] = {}
    for r in records:
        for kind, n in r["emulator_faults"].items():
            faults_by_kind[kind] = faults_by_kind.get(kind, 0) + n
    return {
        "runs": len(records),
        "runs_completed": sum(r["ok"]["complete"] for r in records),
        "fault_rate": args.fault_rate,
        "sizes": {"repos": list(args.repos), "tags_per_repo": list(args.tags),
                  "tags_total": sum(r["tags_before"] for r in records)},
        "retries": sum(r["retries"] for r in records),
        "emulator_faults": sum(faults_by_kind.values()),
        "emulator_faults_by_kind": dict(sorted(faults_by_kind.items())),
        "failed_calls": sum(r["failed_calls"] for r in records),
        # more than one per run: a create whose answer was lost, asked again (not retried)
        "gc_create_calls": sum(r["calls_by_action"].get("ACR:CreateGarbageCollectionTask", 0) for r in records),
        "attempts": sum(r["attempts"] for r in records),
        "emulator_requests": sum(r["emulator_requests"] for r in records),
        "retries_match_faults_runs": sum(r["ok"]["retries_match_faults"] for r in records),
        "tags_deleted": sum(r["deleted_per_truth"] for r in records),
        "unexpected_deletions": sum(len(r["unexpected_per_truth"]) for r in records),
        "unexpected_deletions_per_summary": sum(r["unexpected_per_summary"] or 0 for r in records),
        "missed_deletions_in_complete_runs": sum(len(r["missed_per_truth"]) for r in records if r["ok"]["complete"]),
        "freezes_left": sum(len(r["policies_changed"]) + r["freeze_statements_left"] for r in records),
        "ledger_freezes_not_restored": sum(r["ledger_freezes_not_restored"] for r in records),
        "storage_matches_truth_runs": sum(r["storage_matches_truth"] for r in records),
        "wall_s_per_run": {"median": round(float(walls.median()), 2), "p95": round(float(walls.quantile(0.95)), 2),
                           "max": round(float(walls.max()), 2)},
        "wall_s_total": round(float(walls.sum()), 1),
        "peak_rss_mb": {"benchmark": round(rss["benchmark_peak"], 1), "emulator": round(rss["emulator_peak"], 1)},
        "rss_mb_after_first_and_last_run": {"benchmark": [round(v, 1) for v in rss["benchmark"]],
                                            "emulator": [round(v, 1) for v in rss["emulator"]]},
        "load_avg_1m": load,
        "failed": failed,
        "passed": not failed and len(records) == args.runs,
        "out": str(args.out),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "date": started_at,
    }


def table(result: dict) -> str:
    wall = result["wall_s_per_run"]
    rows = [
        ("runs completed (COMPLETE)", f"{result['runs_completed']}/{result['runs']}"),
        ("retries (client) / faults (emulator)", f"{result['retries']} / {result['emulator_faults']}"),
        ("attempts (client) / requests (emulator)", f"{result['attempts']} / {result['emulator_requests']}"),
        ("runs whose retries match the faults", f"{result['retries_match_faults_runs']}/{result['runs']}"),
        ("tags deleted", str(result["tags_deleted"])),
        ("unexpected deletions (truth / summary)",
         f"{result['unexpected_deletions']} / {result['unexpected_deletions_per_summary']}"),
        ("missed deletions in COMPLETE runs (truth)", str(result["missed_deletions_in_complete_runs"])),
        ("freezes left (bucket / ledger)", f"{result['freezes_left']} / {result['ledger_freezes_not_restored']}"),
        ("storage before/after = truth", f"{result['storage_matches_truth_runs']}/{result['runs']}"),
        ("wall per run median / p95 / max", f"{wall['median']} / {wall['p95']} / {wall['max']} s"),
        ("peak RSS benchmark / emulator",
         f"{result['peak_rss_mb']['benchmark']} / {result['peak_rss_mb']['emulator']} MB"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines += [f"FAILED run {f['run']} (seed {f['seed']}): {f['state'] or f['prefect_state']}: "
              f"{', '.join(f['checks_failed'])}: {f['message']}" for f in result["failed"]]
    return "\n".join(lines)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("sizes must be at least 1")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--repos", type=positive_int, nargs=2, default=[20, 50], metavar=("MIN", "MAX"))
    parser.add_argument("--tags", type=positive_int, nargs=2, default=[20, 60], metavar=("MIN", "MAX"),
                        help="tags per repository (the generated rules keep 15 to 50 per repository)")
    parser.add_argument("--seed", type=int, default=1, help="run i uses seed + i (dataset, sizes, faults)")
    parser.add_argument("--day-seconds", type=float, default=0.25, help="real seconds per emulated day")
    parser.add_argument("--gc-tags-per-second", type=float, default=500)
    parser.add_argument("--out", type=Path, default=None, help="where every run leaves its files (default: a temp dir)")
    parser.add_argument("--prefect-api-url", default=None,
                        help="a running Prefect server to use (default: start a temporary one)")
    args = parser.parse_args()
    args.out = (args.out or Path(tempfile.mkdtemp(prefix="acr-gc-soak-"))).resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.prefect_api_url:
        os.environ["PREFECT_API_URL"] = args.prefect_api_url
    else:
        os.environ.pop("PREFECT_API_URL", None)

    from prefect.testing.utilities import prefect_test_harness

    from acr_gc.cloud import credentials
    from acr_gc.emulator.generator import CREDENTIALS, generate
    from acr_gc.emulator.process import EmulatorProcess

    os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"] = CREDENTIALS[0]["access_key_id"]
    os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = CREDENTIALS[0]["access_key_secret"]
    credentials.reset_chain()

    started_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    load = {"start": os.getloadavg()[0]}
    records: list[dict] = []
    rss = {"benchmark": [], "emulator": []}
    server = nullcontext() if args.prefect_api_url else prefect_test_harness(server_startup_timeout=120)
    with server, EmulatorProcess(generate(1, 1, seed=args.seed), fault_rate=args.fault_rate, seed=args.seed,
                                 day_seconds=args.day_seconds, gc_tags_per_second=args.gc_tags_per_second,
                                 startup_timeout=60) as emu:
        for index in range(args.runs):
            record = one_run(index, args, emu)
            records.append(record)
            if index in (0, args.runs - 1):
                rss["benchmark"].append(rss_mb(os.getpid()))
                rss["emulator"].append(rss_mb(emu.proc.pid))
            verdict = "ok" if all(record["ok"].values()) else \
                "FAILED " + ",".join(k for k, ok in record["ok"].items() if not ok)
            print(f"run {record['run']:>2}/{args.runs} seed {record['seed']}: {record['repos']} repos x "
                  f"{record['tags_per_repo']} tags, {record['state'] or record['prefect_state']} in "
                  f"{record['wall_s']:.1f} s, {record['retries']} retries, {record['deleted_per_truth']} deleted: "
                  f"{verdict}", file=sys.stderr, flush=True)
        rss["benchmark_peak"] = peak_rss_mb(os.getpid())
        rss["emulator_peak"] = peak_rss_mb(emu.proc.pid)
    load["end"] = os.getloadavg()[0]
    load["mean_at_run_start"] = round(sum(r["load_1m"] for r in records) / len(records), 2)

    result = figures(records, args, rss, started_at, load)
    (args.out / "soak.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(table(result))
    print(json.dumps(result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
