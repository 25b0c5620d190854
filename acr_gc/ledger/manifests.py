"""The manifest cache (``ManifestCache``): read and add manifests by digest."""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import insert, select

from acr_gc.cloud.registry import Manifest
from acr_gc.ledger.models import ManifestCache
from acr_gc.ledger.store import Ledger

CHUNK = 500  # digests per IN (...) query: under every engine's bound-parameter limit


def load_manifests(ledger: Ledger, digests: Iterable[str]) -> dict[str, Manifest]:
    """The cached manifests among ``digests``."""
    wanted = list(dict.fromkeys(digests))
    found: dict[str, Manifest] = {}
    with ledger.session() as session:
        for start in range(0, len(wanted), CHUNK):
            rows = session.execute(select(ManifestCache).where(ManifestCache.digest.in_(wanted[start:start + CHUNK])))
            for row in rows.scalars():
                refs = json.loads(row.refs_json)
                found[row.digest] = Manifest(
                    row.digest, row.media_type, int(row.size),
                    tuple((str(d), int(s)) for d, s in refs["blobs"]), tuple(map(str, refs["children"])),
                )
    return found


def save_manifests(ledger: Ledger, manifests: Iterable[Manifest]) -> None:
    """Add manifests (a digest already cached is left as it is: its content cannot differ).

    One ``IN (...)`` query per chunk for the digests already cached, then one multi-row
    insert: a forecast of a large registry saves tens of thousands of manifests, which a
    per-row merge (a select and an insert each) made a measurable part of the run."""
    new = {m.digest: m for m in manifests}
    with ledger.session() as session:
        wanted = list(new)
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start:start + CHUNK]
            for digest in session.scalars(select(ManifestCache.digest).where(ManifestCache.digest.in_(chunk))):
                new.pop(digest, None)
        if new:
            session.execute(insert(ManifestCache), [
                {"digest": m.digest, "media_type": m.media_type, "size": m.size,
                 "refs_json": json.dumps({"blobs": [list(b) for b in m.blobs], "children": list(m.children)})}
                for m in new.values()
            ])
