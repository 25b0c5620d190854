"""Expected bytes (DESIGN section 3, last bullet): hand-worked datasets."""

from __future__ import annotations

import pandas as pd

from acr_gc.rules import expected_bytes, plan


def planned_frame(rows: list[tuple[str, str, str, str, int, bool]]) -> pd.DataFrame:
    """rows: (namespace, repo, tag, digest, image_size, expired) -- a plan's relevant columns."""
    return pd.DataFrame(rows, columns=["namespace", "repo", "tag", "digest", "image_size", "expired"]).astype(
        {"image_size": "int64", "expired": bool}
    )


def layer_frame(refs: dict[str, list[tuple[str, int]]]) -> pd.DataFrame:
    return pd.DataFrame(
        [(digest, layer, size) for digest, layers in refs.items() for layer, size in layers],
        columns=["digest", "layer", "size"],
    ).astype({"size": "int64"})


# D1: only tag a/x:old, expired                    -> manifest freed
# D2: a/x:new, kept                                -> survives
# D3: b/y:old expired, but a/z:keep (another repo) -> survives: manifests are instance-wide
# D4: b/y:older and b/y:older2, both expired       -> freed
PLANNED = planned_frame(
    [
        ("a", "x", "old", "D1", 300, True),
        ("a", "x", "new", "D2", 500, False),
        ("b", "y", "old", "D3", 400, True),
        ("a", "z", "keep", "D3", 400, False),
        ("b", "y", "older", "D4", 600, True),
        ("b", "y", "older2", "D4", 600, True),
    ]
)
LAYERS = {
    "D1": [("L1", 100), ("L2", 200)],
    "D2": [("L2", 200), ("L3", 300)],
    "D3": [("L4", 400)],
    "D4": [("L1", 100), ("L5", 500)],
}


def by_namespace(result) -> dict[str, tuple[int, int, int, bool]]:
    return {
        r.namespace: (r.tags_expired, r.manifests_freed, r.bytes, bool(r.is_upper_bound))
        for r in result.by_namespace.itertuples(index=False)
    }


def test_shared_layers_with_surviving_manifests_are_not_freed():
    result = expected_bytes(PLANNED, layer_frame(LAYERS))
    # Freed manifests D1, D4 reference L1, L2, L5. L2 is also in surviving D2 -> kept.
    # Freed: L1 (100, once although both D1 and D4 use it) + L5 (500) = 600.
    assert result.bytes == 600
    assert result.is_upper_bound is False
    # L1 is referenced by D1 (owner a) and D4 (owner b): attributed to the first, a.
    # L5 only by D4 (b). a: 1 expired tag, D1 freed, 100 B; b: 3 expired tags, D4 freed, 500 B.
    assert by_namespace(result) == {"a": (1, 1, 100, False), "b": (3, 1, 500, False)}
    assert result.by_namespace["bytes"].sum() == result.bytes


def test_unknown_layers_fall_back_to_image_size_once_per_digest_as_upper_bound():
    known = {d: LAYERS[d] for d in ("D1", "D2", "D3")}  # D4's layers unknown
    result = expected_bytes(PLANNED, layer_frame(known))
    # D1 frees L1 (100; D4 cannot be seen to share it); D4 counted as image_size 600 once
    # (two expired tags, one manifest). 100 + 600 = 700, an upper bound.
    assert result.bytes == 700
    assert result.is_upper_bound is True
    assert by_namespace(result) == {"a": (1, 1, 100, False), "b": (3, 1, 600, True)}


def test_no_layers_at_all_uses_image_sizes():
    result = expected_bytes(PLANNED)
    # Freed manifests D1 (300) and D4 (600): 900, an upper bound.
    assert (result.bytes, result.is_upper_bound) == (900, True)
    assert result.by_namespace["bytes"].sum() == 900


def test_unknown_surviving_layers_make_the_known_figure_an_upper_bound():
    result = expected_bytes(PLANNED, layer_frame({"D1": LAYERS["D1"], "D4": LAYERS["D4"]}))
    # Survivors D2, D3 unknown -> nothing seen as kept: L1 100 + L2 200 + L5 500 = 800,
    # but D2 might (and does) share L2, so the figure is only an upper bound.
    assert (result.bytes, result.is_upper_bound) == (800, True)


def test_nothing_expired_frees_nothing():
    planned = planned_frame([("a", "x", "t", "D1", 10, False)])
    result = expected_bytes(planned, layer_frame({"D1": [("L1", 10)]}))
    assert (result.bytes, result.is_upper_bound) == (0, False)
    assert by_namespace(result) == {"a": (0, 0, 0, False)}


def test_alias_kept_in_same_repo_keeps_the_manifest():
    planned = planned_frame([("a", "x", "old", "D1", 10, True), ("a", "x", "latest", "D1", 10, False)])
    result = expected_bytes(planned)
    assert (result.bytes, result.is_upper_bound) == (0, False)


def test_works_on_plan_output():
    tags = pd.DataFrame(
        {
            "namespace": ["a", "a"],
            "repo": ["x", "x"],
            "repo_id": ["1", "1"],
            "tag": ["new", "old"],
            "digest": ["D2", "D1"],
            "image_size": pd.Series([500, 300], dtype="int64"),
            "updated": pd.to_datetime(["2024-02-01", "2024-01-01"], utc=True),
        }
    )
    rules = pd.DataFrame(
        [("k1", "INSTANCE", None, None, 1, None, True)],
        columns=["rule_id", "scope", "namespace", "repo", "retention_tag_count", "tag_regexp", "enable_delete_tag"],
    ).astype({"retention_tag_count": "Int64"})
    result = expected_bytes(plan(tags, rules), layer_frame({"D1": LAYERS["D1"], "D2": LAYERS["D2"]}))
    # old (D1) expires; L2 is shared with D2 (kept) -> only L1 (100) is freed.
    assert (result.bytes, result.is_upper_bound) == (100, False)


# ---------------------------------------------------------------------------------------
# Property test: totals against a brute-force oracle over python sets.

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def oracle_bytes(tag_rows, layer_map, blob_sizes, image_sizes):
    """(bytes, is_upper_bound) by the section 3 wording, one digest at a time."""
    survivors = {digest for _ns, digest, expired in tag_rows if not expired}
    freed = {digest for _ns, digest, _expired in tag_rows} - survivors
    kept_blobs = set()
    for digest in survivors:
        kept_blobs |= set(layer_map.get(digest, ()))
    freed_blobs = set()
    for digest in freed:
        freed_blobs |= set(layer_map.get(digest, ()))
    freed_blobs -= kept_blobs
    unknown_freed = [d for d in freed if d not in layer_map]
    total = sum(blob_sizes[b] for b in freed_blobs) + sum(image_sizes[d] for d in unknown_freed)
    upper = bool(unknown_freed) or (bool(freed_blobs) and any(d not in layer_map for d in survivors))
    return total, upper


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("ab"), st.sampled_from(["D1", "D2", "D3", "D4"]), st.booleans()), max_size=8),
    st.dictionaries(
        st.sampled_from(["D1", "D2", "D3", "D4", "D5"]),
        st.lists(st.sampled_from(["L1", "L2", "L3", "L4"]), min_size=1, max_size=3, unique=True),
    ),
)
def test_expected_bytes_matches_oracle(tag_rows, layer_map):
    blob_sizes = {"L1": 1, "L2": 10, "L3": 100, "L4": 1000}
    image_sizes = {"D1": 10_000, "D2": 20_000, "D3": 40_000, "D4": 80_000}
    planned = planned_frame([(ns, "r", f"t{i}", d, image_sizes[d], e) for i, (ns, d, e) in enumerate(tag_rows)])
    layers = layer_frame({d: [(b, blob_sizes[b]) for b in blobs] for d, blobs in layer_map.items()})
    result = expected_bytes(planned, layers)
    assert (result.bytes, result.is_upper_bound) == oracle_bytes(tag_rows, layer_map, blob_sizes, image_sizes)
    assert result.by_namespace["bytes"].sum() == result.bytes
