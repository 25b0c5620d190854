"""Expected bytes: what a GC that deletes the planned tags should free (DESIGN section 3).

GC deletes the expired tags, then sweeps manifests no tag references and blobs no
surviving manifest references. So, over the WHOLE instance (all repositories):

* a manifest (digest) survives while at least one of its tags survives -- a digest pushed
  to two repositories survives if either copy keeps a tag;
* a manifest is *freed* when every one of its tags is expired;
* a blob (layer) is freed when a freed manifest references it and no surviving manifest
  does.

Inputs
------
``planned`` -- the output of :func:`acr_gc.rules.retention.plan`; uses namespace, digest,
image_size and expired.

``layers`` (optional) -- one row per (manifest, blob) reference:

=======  =======  ===========================================
column   dtype    meaning
=======  =======  ===========================================
digest   str      manifest digest (as in ``tags.digest``)
layer    str      blob digest
size     int64    blob size in bytes
=======  =======  ===========================================

It may cover only some digests. Rows for digests that no tag carries are ignored: the
plan does not know whether such manifests are referenced otherwise.

Upper bound. A freed digest whose layers are unknown is counted as its ``image_size``,
once per digest; since freed images usually share blobs with each other or with survivors,
that is an upper bound, and ``is_upper_bound`` says so. For the same reason the figure is
also an upper bound when blobs were counted as freed from known layers while some
surviving manifest's layers are unknown (it might still reference one of those blobs).

Per-namespace attribution. Every freed byte is attributed to exactly one namespace, so
the per-namespace figures sum to the total: a freed manifest belongs to the
alphabetically first namespace among its (all expired) tags, and a freed blob to the
alphabetically first namespace among the freed manifests that reference it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from acr_gc.rules.retention import FrameContractError, require_columns

PLANNED_COLUMNS = ("namespace", "digest", "image_size", "expired")
LAYER_COLUMNS = ("digest", "layer", "size")
BY_NAMESPACE_COLUMNS = ("namespace", "tags_expired", "manifests_freed", "bytes", "is_upper_bound")


@dataclass(frozen=True)
class ExpectedBytes:
    """The planned saving.

    ``by_namespace`` has one row per namespace in ``planned`` (sorted by name) with
    columns namespace, tags_expired, manifests_freed, bytes (int64) and is_upper_bound
    (bool: some of this namespace's bytes come from the image-size fallback, or the
    total is an upper bound for the surviving-unknown reason in the module docstring).
    ``by_namespace.bytes.sum() == bytes``.
    """

    bytes: int
    is_upper_bound: bool
    by_namespace: pd.DataFrame


def _empty_result(namespaces: pd.Index) -> ExpectedBytes:
    frame = pd.DataFrame(
        {
            "namespace": pd.Series(np.asarray(namespaces, dtype=object), dtype=object),
            "tags_expired": np.zeros(len(namespaces), dtype=np.int64),
            "manifests_freed": np.zeros(len(namespaces), dtype=np.int64),
            "bytes": np.zeros(len(namespaces), dtype=np.int64),
            "is_upper_bound": np.zeros(len(namespaces), dtype=bool),
        }
    )
    return ExpectedBytes(0, False, frame)


def expected_bytes(planned: pd.DataFrame, layers: pd.DataFrame | None = None) -> ExpectedBytes:
    """Bytes GC should free if it deletes exactly the planned expired tags."""
    require_columns(planned, PLANNED_COLUMNS, "planned")
    if planned["digest"].isna().any():
        raise FrameContractError("planned.digest has missing values")
    expired = planned["expired"].to_numpy(dtype=bool)
    ns_codes, namespaces = pd.factorize(planned["namespace"], sort=True)
    if len(planned) == 0:
        return _empty_result(pd.Index([]))

    digest_codes, digests = pd.factorize(planned["digest"])
    n_digests = len(digests)
    survives = np.bincount(digest_codes[~expired], minlength=n_digests) > 0
    freed = (np.bincount(digest_codes[expired], minlength=n_digests) > 0) & ~survives

    # Owner namespace of a freed manifest: the smallest namespace code among its tags
    # (codes follow alphabetical order because of sort=True above).
    manifest_owner = np.full(n_digests, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(manifest_owner, digest_codes[expired], ns_codes[expired].astype(np.int64))

    n_ns = len(namespaces)
    ns_bytes = np.zeros(n_ns, dtype=np.int64)
    ns_fallback = np.zeros(n_ns, dtype=bool)

    layers_known = np.zeros(n_digests, dtype=bool)
    layer_bytes_total = 0
    if layers is not None and len(layers):
        require_columns(layers, LAYER_COLUMNS, "layers")
        layer_digest = pd.Index(digests).get_indexer(layers["digest"])
        on_tagged = layer_digest >= 0
        layer_digest = layer_digest[on_tagged]
        refs = layers.loc[on_tagged, ["layer", "size"]]
        if refs["layer"].isna().any() or refs["size"].isna().any():
            raise FrameContractError("layers.layer and layers.size must not be missing")
        layers_known[layer_digest] = True
        blob_codes, blobs = pd.factorize(refs["layer"])
        # One size per blob; if the inventory disagrees with itself, stay an upper bound.
        blob_size = np.zeros(len(blobs), dtype=np.int64)
        np.maximum.at(blob_size, blob_codes, refs["size"].to_numpy(dtype=np.int64))
        blob_kept = np.bincount(blob_codes[survives[layer_digest]], minlength=len(blobs)) > 0
        from_freed = freed[layer_digest]
        blob_owner = np.full(len(blobs), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(blob_owner, blob_codes[from_freed], manifest_owner[layer_digest[from_freed]])
        blob_freed = (blob_owner != np.iinfo(np.int64).max) & ~blob_kept
        np.add.at(ns_bytes, blob_owner[blob_freed], blob_size[blob_freed])
        layer_bytes_total = int(blob_size[blob_freed].sum())

    fallback = freed & ~layers_known
    if fallback.any():
        image_size = np.zeros(n_digests, dtype=np.int64)
        np.maximum.at(image_size, digest_codes, planned["image_size"].to_numpy(dtype=np.int64))
        owners = manifest_owner[fallback]
        np.add.at(ns_bytes, owners, image_size[fallback])
        ns_fallback[owners] = True

    survivor_unknown = bool((survives & ~layers_known).any())
    unknown_survivor_may_share = layer_bytes_total > 0 and survivor_unknown
    is_upper_bound = bool(fallback.any()) or unknown_survivor_may_share
    if unknown_survivor_may_share:
        ns_fallback |= ns_bytes > 0

    by_namespace = pd.DataFrame(
        {
            "namespace": pd.Series(np.asarray(namespaces, dtype=object), dtype=object),
            "tags_expired": np.bincount(ns_codes[expired], minlength=n_ns).astype(np.int64),
            "manifests_freed": np.bincount(manifest_owner[freed], minlength=n_ns).astype(np.int64),
            "bytes": ns_bytes,
            "is_upper_bound": ns_fallback,
        }
    )
    return ExpectedBytes(int(ns_bytes.sum()), is_upper_bound, by_namespace)
