"""Benchmark: saving the forecast's manifests into the ledger's manifest cache.

    .venv/bin/python benchmarks/manifest_cache.py [--count 60000] [--layers 6]

A first forecast of a large registry saves every manifest it read (85,958 for 100,000
tags in ``forecast.py``); this times ``save_manifests`` for ``--count`` new manifests into
a fresh SQLite ledger, then again with all of them already cached (a later run's
re-save must cost only the lookups). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from acr_gc.cloud.registry import Manifest  # noqa: E402
from acr_gc.ledger import Ledger, manifests  # noqa: E402


def _timed(call) -> dict[str, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    call()
    return {"wall_s": round(time.perf_counter() - wall, 2), "cpu_s": round(time.process_time() - cpu, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=60_000)
    parser.add_argument("--layers", type=int, default=6)
    args = parser.parse_args()
    batch = [Manifest(f"sha256:{i:064x}", "application/vnd.oci.image.manifest.v1+json", 1_000 + i,
                      tuple((f"sha256:{i * 7 + k + 10**9:064x}", 10 * k) for k in range(args.layers)), ())
             for i in range(args.count)]
    with tempfile.TemporaryDirectory() as folder:
        ledger = Ledger(f"sqlite:///{Path(folder) / 'ledger.db'}")
        manifests.load_manifests(ledger, [])  # the tables exist before the clock starts
        first = _timed(lambda: manifests.save_manifests(ledger, batch))
        again = _timed(lambda: manifests.save_manifests(ledger, batch))
        ledger.dispose()
    print(json.dumps({"manifests": args.count, "new": first, "all_cached": again}))


if __name__ == "__main__":
    main()
