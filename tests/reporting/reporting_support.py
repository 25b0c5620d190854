"""The hand-worked instance of the reporting tests, its arithmetic, configs and the CLI.

Imported by name (tests/reporting/conftest.py puts this folder on ``sys.path``).

Everything expected here is worked out by hand from the object layout of
docs/emulator.md ("Object layout in the instance's bucket"); nothing calls the code
under test. The emulator's ground truth (``/_emulator/truth``) is the second witness.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import os
import subprocess
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

AK, SECRET, PRINCIPAL = "LTAI-reporting-ops", "reporting-ops-secret", "uid-ops-5005"
WRITER_AK, WRITER_SECRET, WRITER_PRINCIPAL = "LTAI-reporting-app", "reporting-app-secret", "uid-app-6006"

INSTANCE, BUCKET = "cri-rep", "cri-rep-storage"
CLOCK = "2026-11-01T00:00:00Z"
NONCURRENT_DAYS = 2
MARGIN_DAYS = 2
PRICE, CURRENCY = 2.5, "USD"

MANIFEST_BYTES = 1024  # docs/emulator.md: every manifest blob
LINK_BYTES = 71  # a tag link holds its digest string: len("sha256:" + 64 hex) = 71
GIB = 2**30


def digest(name: str) -> str:
    return "sha256:" + hashlib.sha256(f"rep-image-{name}".encode()).hexdigest()


def layer(name: str) -> str:
    return "sha256:" + hashlib.sha256(f"rep-layer-{name}".encode()).hexdigest()


# Layer blobs (bytes). "base" is in every image; "shared" is in a KEPT image (v2) and an
# EXPIRED one (v1), so GC must not free it; e1/e2 are only in expired images.
LAYERS = {
    "base": 200_000_000,
    "shared": 150_000_000,
    "k1": 50_000_000,
    "e1": 400_000_000,
    "e2": 700_000_000,
    "k2": 25_000_000,
}
IMAGES = {  # manifest digest name -> its layers
    "D3": ["base", "k1"],
    "D2": ["base", "shared"],
    "D1": ["base", "shared", "e1"],
    "D0": ["base", "e2"],
    "DT": ["base", "k2"],
}
CHART_VERSIONS = [("1.0.0", 30_000_000), ("1.1.0", 32_000_000)]
EXTRA = {"key": "exports/finance.csv", "size": 5_000_000}  # a non-registry object beside the registry


def _tag(name: str, image: str, updated: str) -> dict:
    return {"tag": name, "digest": digest(image), "updated": updated,
            "layers": [layer(x) for x in IMAGES[image]]}


# apps/web: one REPO rule, retention_tag_count 2. Newest first: v3, v2 kept (count 2);
# v1, v0, old expired. v1 and v0 are regenerable by the build rule "v*" on the bound
# source; "old" points at D3, which v3 keeps (an alias). tools/cli: no rule applies, so
# its only tag is kept.
WEB_TAGS = [
    _tag("v3", "D3", "2026-10-30T00:00:00Z"),
    _tag("v2", "D2", "2026-10-20T00:00:00Z"),
    _tag("v1", "D1", "2026-10-10T00:00:00Z"),
    _tag("v0", "D0", "2026-10-01T00:00:00Z"),
    _tag("old", "D3", "2026-09-01T00:00:00Z"),
]
EXPIRED = ["old", "v0", "v1"]
RETAINED = {"apps/web": ["v2", "v3"], "tools/cli": ["latest"]}

# ---- the arithmetic ------------------------------------------------------------------
# Before the run (every object once, however many tags share it):
#   layer blobs   200,000,000 + 150,000,000 + 50,000,000 + 400,000,000 + 700,000,000
#                 + 25,000,000                                   = 1,525,000,000
#   manifests     D3 D2 D1 D0 DT: 5 x 1,024                      =         5,120
#   tag links     v3 v2 v1 v0 old (apps/web) + latest (tools/cli): 6 x 71 =   426
#   chart         apps/web-chart 1.0.0 + 1.1.0: 30,000,000 + 32,000,000 = 62,000,000
#   extra object  exports/finance.csv                            =     5,000,000
#   before        1,525,000,000 + 5,120 + 426 + 62,000,000 + 5,000,000 = 1,592,005,546
BEFORE_BYTES = 1_592_005_546
BEFORE_OBJECTS = 6 + 5 + 6 + 2 + 1  # 20
# GC deletes old, v0, v1 and sweeps:
#   tag links     3 x 71                                         =           213
#   manifests     D1, D0 (D3 stays: v3 still names it): 2 x 1,024 =        2,048
#   blobs         e1 + e2 (base and shared stay: D2/D3/DT use them) = 1,100,000,000
#   reclaimed                                                    = 1,100,002,261
RECLAIMED_BYTES = 1_100_002_261
# After the window (noncurrent versions released after 2 days): what stays live
#   blobs base + shared + k1 + k2 = 425,000,000; manifests D3 D2 DT = 3,072;
#   links v3 v2 latest = 213; charts 62,000,000; extra 5,000,000  => 492,003,285
AFTER_BYTES = 492_003_285
AFTER_OBJECTS = 4 + 3 + 3 + 2 + 1  # 13
assert BEFORE_BYTES - RECLAIMED_BYTES == AFTER_BYTES  # the two ways agree
# saving: 1,100,002,261 / 2^30 = 1.0244569377973... GiB x 2.5 USD = 2.56114... -> 2.56
SAVING = 2.56
# reclaimed_pct: 1,100,002,261 / 1,592,005,546 x 100 = 69.0955... -> 69.10
RECLAIMED_PCT = 69.10


def saving_half_up(reclaimed: int, price: float) -> float:
    """DESIGN/figures: max(reclaimed, 0) / 2^30 x price, half-up to 2 decimals (exact)."""
    exact = Decimal(max(reclaimed, 0)) / Decimal(GIB) * Decimal(str(price))
    return float(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def dataset() -> dict:
    return copy.deepcopy({
        "clock": CLOCK,
        "credentials": [
            {"access_key_id": AK, "access_key_secret": SECRET, "principal": PRINCIPAL},
            {"access_key_id": WRITER_AK, "access_key_secret": WRITER_SECRET, "principal": WRITER_PRINCIPAL},
        ],
        "layers": {layer(name): size for name, size in LAYERS.items()},
        "instances": [{
            "instance_id": INSTANCE,
            "name": INSTANCE,
            "region": "cn-hangzhou",
            "gc_whitelisted": True,
            "bucket": BUCKET,
            "namespaces": ["apps", "tools"],
            "repositories": [
                {"namespace": "apps", "name": "web",
                 "source_code": {"type": "GITHUB", "namespace": "acme", "name": "web"},
                 "build_rules": [{"push_type": "GIT_TAG", "push_name": "v.*", "image_tag": "v*"}],
                 "sync_rules": [], "tags": WEB_TAGS},
                {"namespace": "tools", "name": "cli", "source_code": None, "build_rules": [], "sync_rules": [],
                 "tags": [_tag("latest", "DT", "2026-10-15T00:00:00Z")]},
            ],
            "charts": [{"namespace": "apps", "name": "web-chart",
                        "versions": [{"version": v, "size": s} for v, s in CHART_VERSIONS]}],
            "lifecycle_rules": [{"scope": "REPO", "namespace": "apps", "repo": "web",
                                 "retention_tag_count": 2, "enable_delete_tag": True}],
        }],
        "buckets": [{
            "name": BUCKET, "versioning": "Enabled",
            "lifecycle": [{"id": "noncurrent", "prefix": "docker/", "noncurrent_days": NONCURRENT_DAYS}],
            "policy": None, "extra_objects": [EXTRA],
        }],
    })


def config_dict(emu, root: Path, mode: str, day_length: float = 86400.0) -> dict:
    return {
        "target": {"region": "cn-hangzhou", "instance_id": INSTANCE, "bucket": BUCKET,
                   "acr_endpoint": emu.acr_endpoint, "oss_endpoint": emu.oss_endpoint, "credentials": "chain"},
        "freeze": {"principals": [WRITER_PRINCIPAL]},
        "gc": {"driver": "emulator", "timeout": 120, "poll_interval": 0.2, "on_timeout": "cancel"},
        "sampling": {"mode": mode, "interval": "P1D", "day_length": day_length, "margin_days": MARGIN_DAYS},
        "report": {"out_dir": str(root / "out"), "price_per_gb_month": PRICE, "currency": CURRENCY},
        "ledger": {"url": f"sqlite:///{root / 'ledger.db'}"},
        "api": {"qps": 200, "concurrency": 4, "retries": 6},
    }


def use_keys(monkeypatch, ak: str = AK, secret: str = SECRET) -> None:
    """The run's key through the credential chain (env vars), forgetting a cached chain."""
    from acr_gc.cloud.credentials import reset_chain

    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", ak)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", secret)
    reset_chain()


def write_config(config: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def cli_env(prefect_api_url: str | None, ak: str = AK, secret: str = SECRET, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "PREFECT_API_"))}
    env.update(ALIBABA_CLOUD_ACCESS_KEY_ID=ak, ALIBABA_CLOUD_ACCESS_KEY_SECRET=secret,
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PYTHONPATH=str(ROOT), COLUMNS="200", **extra)
    if prefect_api_url:
        env["PREFECT_API_URL"] = prefect_api_url
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "acr_gc.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def summary_of(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text(encoding="utf-8"))


def csv_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def ledger_run_and_samples(url: str, run_id: str):
    """(run row, [(taken_at, storage_bytes, object_count, phase)] by time) from the ledger."""
    from sqlalchemy import select

    from acr_gc.ledger import Ledger
    from acr_gc.ledger.models import Run, Sample

    ledger = Ledger(url)
    try:
        with ledger.session() as session:
            run = session.get(Run, run_id)
            session.expunge(run)
            samples = [(s.taken_at, s.storage_bytes, s.object_count, s.phase) for s in session.scalars(
                select(Sample).where(Sample.run_id == run_id).order_by(Sample.taken_at, Sample.id))]
        return run, samples
    finally:
        ledger.dispose()


def utc(moment):
    """A ledger time (naive = UTC on SQLite, or aware) as an aware UTC datetime."""
    from datetime import timezone

    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def iso(moment) -> str:
    """A ledger time as summary.json and samples.csv write times."""
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def bucket_truth(emu) -> dict:
    return emu.truth()["buckets"][BUCKET]
