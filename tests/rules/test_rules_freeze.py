"""Freeze and thaw (DESIGN section 5): hand-worked policies and hypothesis properties.

The emulator's policy evaluator (``acr_gc.emulator.policy``) is used only as an
independent judge that the frozen document is a valid OSS policy that denies the writes
and lets the reads through; the rules module never imports the emulator.
"""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acr_gc.emulator import policy as emulated_oss
from acr_gc.rules.freeze import (
    ACR_SERVICE_ROLE_NAMES,
    FREEZE_ACTIONS,
    FreezeError,
    ThawPlan,
    apply_freeze,
    freeze_sid,
    freeze_sids,
    freeze_statement,
    is_freeze_sid,
    statement_present,
    thaw_policy,
    validate_principals,
)

RUN = "2024-05-01T00:00:00Z-cri-demo"
SID = "AcrGcFreeze20240501T000000Zcridemo"
BUCKET = "cri-demo-storage"

READ_ACTIONS = [
    "oss:GetObject",
    "oss:GetObjectAcl",
    "oss:GetObjectVersion",
    "oss:GetObjectTagging",
    "oss:GetObjectMeta",
    "oss:ListObjects",
    "oss:ListObjectVersions",
    "oss:ListParts",
    "oss:GetBucketStat",
    "oss:GetBucketInfo",
    "oss:GetBucketPolicy",
]

OTHER_ALLOW = {
    "Sid": "PublicRead",
    "Effect": "Allow",
    "Principal": ["*"],
    "Action": ["oss:GetObject"],
    "Resource": [f"acs:oss:*:*:{BUCKET}/public/*"],
}
OTHER_DENY = {
    "Effect": "Deny",
    "Principal": ["20001"],
    "Action": ["oss:DeleteObject"],
    "Resource": [f"acs:oss:*:*:{BUCKET}/*"],
    "Condition": {"IpAddress": {"acs:SourceIp": ["10.0.0.0/8"]}, "StringNotLike": {"acs:SourceVpc": ["vpc-*"]}},
}
ORIGINAL = {"Version": "1", "Statement": [OTHER_ALLOW, OTHER_DENY]}


def statement(principals=("20001",), run=RUN):
    return freeze_statement(BUCKET, run, list(principals))


# -- the Sid


def test_sid_is_prefix_plus_alphanumerics_and_deterministic():
    assert freeze_sid(RUN) == SID
    assert freeze_sid(RUN) == freeze_sid(RUN)
    assert freeze_sid("abc") == "AcrGcFreezeabc"
    assert is_freeze_sid(SID)
    assert not is_freeze_sid("AcrGcFreeze") and not is_freeze_sid("PublicRead") and not is_freeze_sid(None)


@pytest.mark.parametrize("bad", ["", "---", ":/ "])
def test_sid_needs_letters_or_digits(bad):
    with pytest.raises(FreezeError):
        freeze_sid(bad)


# -- the statement


def test_statement_shape():
    s = freeze_statement(BUCKET, RUN, ["20001", "arn:sts::1:assumed-role/ci/x", "20001"])
    assert s == {
        "Sid": SID,
        "Effect": "Deny",
        "Principal": ["20001", "arn:sts::1:assumed-role/ci/x"],
        "Action": list(FREEZE_ACTIONS),
        "Resource": [f"acs:oss:*:*:{BUCKET}/*"],
    }
    assert "Condition" not in freeze_statement(BUCKET, RUN, ["20001"])


def test_actions_cover_writes_and_deletes_and_no_reads():
    for needed in ("oss:PutObject", "oss:DeleteObject", "oss:AbortMultipartUpload", "oss:DeleteObjectVersion",
                   "oss:PutObjectAcl", "oss:PutObjectTagging", "oss:DeleteObjectTagging"):
        assert needed in FREEZE_ACTIONS
    assert len(set(FREEZE_ACTIONS)) == len(FREEZE_ACTIONS)
    for action in FREEZE_ACTIONS:
        assert "*" not in action and "?" not in action
        assert action not in READ_ACTIONS
        assert not action.startswith(("oss:Get", "oss:List", "oss:Restore"))


@pytest.mark.parametrize("bad", ["", "a/b", "a*", "acs:oss:x"])
def test_statement_refuses_odd_bucket_names(bad):
    with pytest.raises(FreezeError):
        freeze_statement(bad, RUN, ["20001"])


def test_frozen_policy_denies_writes_and_allows_reads_in_the_emulated_oss():
    frozen = apply_freeze(ORIGINAL, statement(["20002"]))
    text = json.dumps(frozen)
    emulated_oss.parse_policy(text)  # a valid OSS policy document
    key = "docker/registry/v2/blobs/sha256/ab/abc/data"
    assert emulated_oss.is_denied(text, "20002", "oss:PutObject", BUCKET, key)
    assert emulated_oss.is_denied(text, "20002", "oss:DeleteObject", BUCKET, key)
    for read in READ_ACTIONS:
        assert not emulated_oss.is_denied(text, "20002", read, BUCKET, key)
    assert not emulated_oss.is_denied(text, "30003", "oss:PutObject", BUCKET, key)  # not a frozen principal
    assert not emulated_oss.is_denied(text, "20002", "oss:PutObject", "other-bucket", key)


# -- principals


def test_plain_principals_are_allowed_and_star_is_refused():
    assert validate_principals([" 20001 ", "20001", "acs:ram::1:user/ci"],
                               ["acs:ram::1:role/aliyuncontainerregistrydefaultrole"]) == ["20001", "acs:ram::1:user/ci"]
    for star in (["*"], ["20001", " * "]):
        with pytest.raises(FreezeError) as err:
            validate_principals(star, [])
        assert "\n" not in str(err.value) and "registry" in str(err.value)


@pytest.mark.parametrize(
    "principal,service",
    [
        ("acs:ram::123:role/my-registry-role", ["acs:ram::123:role/my-registry-role"]),
        ("ACS:RAM::123:ROLE/My-Registry-Role", ["acs:ram::123:role/my-registry-role"]),
        ("arn:sts::123:assumed-role/my-registry-role/session", ["acs:ram::123:role/my-registry-role"]),
        ("20009", ["20009"]),
        ("acs:ram::123:role/aliyuncontainerregistrydefaultrole", []),
        ("arn:sts::123:assumed-role/AliyunContainerRegistryCustomizedOSSBucketRole/cr", []),
        ("acs:ram::123:role/AliyunServiceRoleForContainerRegistry", []),
        ("AliyunContainerRegistryDefaultRole", []),
    ],
)
def test_the_registry_service_role_is_refused(principal, service):
    with pytest.raises(FreezeError) as err:
        validate_principals(["20001", principal], service)
    message = str(err.value)
    assert "\n" not in message and "service role" in message


def test_service_role_refused_by_freeze_statement_too():
    with pytest.raises(FreezeError):
        freeze_statement(BUCKET, RUN, [f"acs:ram::1:role/{ACR_SERVICE_ROLE_NAMES[0]}"])


@pytest.mark.parametrize("bad", [[], [""], ["  "], [None], "20001"])
def test_bad_principal_lists(bad):
    with pytest.raises(FreezeError):
        validate_principals(bad, [])


# -- apply_freeze


def test_apply_to_no_policy_makes_a_new_document():
    s = statement()
    assert apply_freeze(None, s) == {"Version": "1", "Statement": [s]}


def test_apply_keeps_other_statements_in_order_and_appends_ours():
    s = statement()
    frozen = apply_freeze(ORIGINAL, s)
    assert frozen == {"Version": "1", "Statement": [OTHER_ALLOW, OTHER_DENY, s]}
    assert statement_present(frozen, SID) and not statement_present(ORIGINAL, SID)


def test_apply_replaces_our_statement_in_place_not_stacked():
    old = statement(["20001"])
    new = statement(["20002"])
    policy = {"Version": "1", "Statement": [OTHER_ALLOW, old, OTHER_DENY]}
    assert apply_freeze(policy, new) == {"Version": "1", "Statement": [OTHER_ALLOW, new, OTHER_DENY]}
    doubled = {"Version": "1", "Statement": [old, OTHER_ALLOW, old]}
    assert apply_freeze(doubled, new) == {"Version": "1", "Statement": [new, OTHER_ALLOW]}


def test_apply_is_idempotent_and_keeps_other_top_level_keys():
    policy = {"Version": "1", "Id": "corp", "Statement": [OTHER_DENY]}
    once = apply_freeze(policy, statement())
    assert apply_freeze(once, statement()) == once
    assert once["Id"] == "corp"


def test_apply_accepts_json_text_and_a_lone_statement_object():
    s = statement()
    assert apply_freeze(json.dumps(ORIGINAL), s) == apply_freeze(ORIGINAL, s)
    assert apply_freeze({"Version": "1", "Statement": OTHER_ALLOW}, s)["Statement"] == [OTHER_ALLOW, s]


def test_apply_does_not_mutate_and_shares_nothing():
    original = copy.deepcopy(ORIGINAL)
    s = statement()
    s_before = copy.deepcopy(s)
    frozen = apply_freeze(original, s)
    assert original == ORIGINAL and s == s_before
    frozen["Statement"][0]["Action"].append("oss:Everything")
    frozen["Statement"][-1]["Principal"].append("x")
    assert original == ORIGINAL and s == s_before


@pytest.mark.parametrize("bad", [[1, 2], "not json", {"Version": "1", "Statement": "x"}])
def test_apply_refuses_non_documents(bad):
    with pytest.raises(FreezeError):
        apply_freeze(bad, statement())


# -- thaw


def test_thaw_restores_the_original_exactly():
    frozen = apply_freeze(ORIGINAL, statement())
    plan = thaw_policy(frozen, ORIGINAL, SID)
    assert plan == ThawPlan("put", ORIGINAL, "", False)


def test_thaw_deletes_when_there_was_no_policy():
    plan = thaw_policy(apply_freeze(None, statement()), None, SID)
    assert plan == ThawPlan("delete", None, "", False)


def test_thaw_ignores_key_order_of_the_current_document():
    frozen = apply_freeze(ORIGINAL, statement())
    reordered = {
        "Statement": [dict(reversed(list(s.items()))) for s in frozen["Statement"]],
        "Version": "1",
    }
    assert json.dumps(reordered) != json.dumps(frozen)
    plan = thaw_policy(json.dumps(reordered), ORIGINAL, SID)
    assert plan.action == "put" and plan.policy == ORIGINAL and not plan.changed_meanwhile


def test_thaw_restores_the_original_even_when_it_was_a_lone_statement_object():
    original = {"Version": "1", "Statement": OTHER_ALLOW}
    plan = thaw_policy(apply_freeze(original, statement()), original, SID)
    assert plan.action == "put" and plan.policy == original and not plan.changed_meanwhile


def test_thaw_when_already_thawed_does_nothing():
    for current in (None, ORIGINAL, {"Version": "1", "Statement": [OTHER_DENY]}):
        plan = thaw_policy(current, ORIGINAL, SID)
        assert plan.action == "none" and plan.policy is None
        assert "already thawed" in plan.note


def test_thaw_when_statement_added_meanwhile_keeps_it():
    added = {"Sid": "NewByOps", "Effect": "Allow", "Principal": ["3"], "Action": ["oss:GetObject"],
             "Resource": [f"acs:oss:*:*:{BUCKET}/*"]}
    frozen = apply_freeze(ORIGINAL, statement())
    current = copy.deepcopy(frozen)
    current["Statement"].append(added)
    plan = thaw_policy(current, ORIGINAL, SID)
    assert plan.action == "put" and plan.changed_meanwhile
    assert plan.policy == {"Version": "1", "Statement": [OTHER_ALLOW, OTHER_DENY, added]}
    assert "changed by someone else" in plan.note and "not overwritten" in plan.note


def test_thaw_when_an_original_statement_was_removed_meanwhile_keeps_it_removed():
    current = {"Version": "1", "Statement": [OTHER_DENY, statement()]}
    plan = thaw_policy(current, ORIGINAL, SID)
    assert plan.action == "put" and plan.changed_meanwhile
    assert plan.policy == {"Version": "1", "Statement": [OTHER_DENY]}


def test_thaw_when_the_whole_policy_was_replaced_but_kept_our_statement():
    replacement = {"Version": "1", "Statement": [statement(), OTHER_DENY]}
    plan = thaw_policy(replacement, ORIGINAL, SID)
    assert plan.action == "put" and plan.changed_meanwhile
    assert plan.policy == {"Version": "1", "Statement": [OTHER_DENY]}


def test_thaw_when_nothing_else_is_left():
    only_ours = {"Version": "1", "Statement": [statement()]}
    # there was a policy, someone removed its statements meanwhile: an empty policy cannot be put
    plan = thaw_policy(only_ours, ORIGINAL, SID)
    assert plan.action == "delete" and plan.policy is None and plan.changed_meanwhile
    assert "changed by someone else" in plan.note and "OSS accepts no empty policy" in plan.note
    # there was no policy and someone edited ours (passed statement differs): delete, flagged
    edited = statement(["20001"])
    plan = thaw_policy({"Version": "1", "Statement": [edited]}, None, SID, statement=statement(["20003"]))
    assert plan.action == "delete" and plan.changed_meanwhile
    assert "nothing else was left" in plan.note and "empty policy" not in plan.note


def test_thaw_with_our_statement_edited_meanwhile_counts_as_a_change_when_statement_given():
    ours = statement(["20001"])
    edited = statement(["20001", "20002"])
    current = apply_freeze(ORIGINAL, edited)
    assert thaw_policy(current, ORIGINAL, SID).action == "put"  # taken from current: looks untouched
    plan = thaw_policy(current, ORIGINAL, SID, statement=ours)
    assert plan.action == "put" and plan.policy == ORIGINAL and plan.changed_meanwhile


def test_thaw_top_level_change_is_a_change():
    current = apply_freeze(ORIGINAL, statement())
    current["Id"] = "added-by-ops"
    plan = thaw_policy(current, ORIGINAL, SID)
    assert plan.changed_meanwhile and plan.policy == {**ORIGINAL, "Id": "added-by-ops"}


def test_json_equality_distinguishes_true_from_one():
    original = {"Version": "1", "Statement": [{**OTHER_DENY, "Condition": {"Bool": {"acs:SecureTransport": [True]}}}]}
    current = apply_freeze(original, statement())
    current["Statement"][0]["Condition"]["Bool"]["acs:SecureTransport"] = [1]
    assert thaw_policy(current, original, SID).changed_meanwhile


def test_thaw_refuses_mismatched_statement_and_does_not_mutate():
    frozen = apply_freeze(ORIGINAL, statement())
    frozen_copy = copy.deepcopy(frozen)
    with pytest.raises(FreezeError):
        thaw_policy(frozen, ORIGINAL, SID, statement=statement(run="other-run"))
    plan = thaw_policy(frozen, ORIGINAL, SID)
    assert frozen == frozen_copy and ORIGINAL == {"Version": "1", "Statement": [OTHER_ALLOW, OTHER_DENY]}
    plan.policy["Statement"].clear()
    assert ORIGINAL["Statement"] and frozen == frozen_copy


def test_freeze_sids_finds_stale_freezes_of_any_run():
    a = statement(run="run-a")
    b = statement(run="run-b")
    policy = apply_freeze(apply_freeze(ORIGINAL, a), b)
    assert freeze_sids(policy) == ["AcrGcFreezeruna", "AcrGcFreezerunb"]
    assert freeze_sids(None) == [] and freeze_sids(ORIGINAL) == []


# -- properties

_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x24F), max_size=12)
_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), _text)
_condition = st.dictionaries(_text, st.dictionaries(_text, st.lists(_json_leaf, max_size=3), max_size=2), max_size=2)
_principal = st.one_of(st.from_regex(r"[0-9]{5,16}", fullmatch=True),
                       st.from_regex(r"acs:ram::[0-9]{3}:role/[a-z]{1,8}", fullmatch=True))


@st.composite
def _statements(draw):
    s = {
        "Effect": draw(st.sampled_from(["Allow", "Deny"])),
        "Principal": draw(st.lists(_principal, min_size=1, max_size=3)),
        "Action": draw(st.lists(st.sampled_from(["oss:GetObject", "oss:PutObject", "oss:*", "oss:List*"]),
                                min_size=1, max_size=3)),
        "Resource": draw(st.lists(st.sampled_from([f"acs:oss:*:*:{BUCKET}/*", f"acs:oss:*:*:{BUCKET}",
                                                   "acs:oss:*:*:*"]), min_size=1, max_size=2)),
    }
    sid = draw(st.one_of(st.none(), _text, st.from_regex(r"AcrGcFreeze[a-z0-9]{1,6}", fullmatch=True)))
    if sid is not None:
        s["Sid"] = sid
    if draw(st.booleans()):
        s["Condition"] = draw(_condition)
    keys = list(s)
    order = draw(st.permutations(keys))
    return {k: s[k] for k in order}


_policies = st.one_of(
    st.none(),
    st.builds(lambda stmts, extra: {"Version": "1", "Statement": stmts, **extra},
              st.lists(_statements(), min_size=1, max_size=6),
              st.dictionaries(st.sampled_from(["Id", "Comment"]), _text, max_size=1)),
)
_runs = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9:._-]{0,20}", fullmatch=True)
_principal_lists = st.lists(_principal, min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(_policies, _runs, _principal_lists)
def test_property_thaw_of_freeze_restores_exactly(policy, run, principals):
    sid = freeze_sid(run)
    if statement_present(policy, sid):
        return  # a policy already holding our Sid is the re-run case, tested by hand
    before = copy.deepcopy(policy)
    s = freeze_statement(BUCKET, run, principals)
    frozen = apply_freeze(policy, s)
    assert policy == before
    assert statement_present(frozen, sid)
    assert sum(1 for st_ in frozen["Statement"] if st_.get("Sid") == sid) == 1
    for plan in (thaw_policy(frozen, policy, sid), thaw_policy(frozen, policy, sid, statement=s),
                 thaw_policy(json.dumps(frozen), json.dumps(policy) if policy else None, sid)):
        assert not plan.changed_meanwhile and plan.note == ""
        if policy is None:
            assert plan.action == "delete" and plan.policy is None
        else:
            assert plan.action == "put"
            assert json.dumps(plan.policy, sort_keys=True) == json.dumps(policy, sort_keys=True)
    assert policy == before and frozen == apply_freeze(policy, s)
    # and thawing what thaw restored does nothing more
    restored = policy
    assert thaw_policy(restored, policy, sid).action == "none"


@settings(max_examples=300, deadline=None)
@given(_policies, _runs, _runs, _principal_lists, _principal_lists)
def test_property_apply_is_idempotent_and_pure(policy, run, other_run, principals, other_principals):
    s = freeze_statement(BUCKET, run, principals)
    s2 = freeze_statement(BUCKET, run, other_principals)
    other = freeze_statement(BUCKET, other_run, principals)
    before = copy.deepcopy((policy, s, s2, other))
    once = apply_freeze(policy, s)
    assert apply_freeze(once, s) == once
    # a re-run's statement replaces ours in place: same length, same position
    again = apply_freeze(once, s2)
    position = [x.get("Sid") for x in once["Statement"]].index(s["Sid"])
    assert len(again["Statement"]) == len(once["Statement"]) and again["Statement"][position] == s2
    # other statements untouched and in order
    others = [x for x in once["Statement"] if x.get("Sid") != s["Sid"]]
    originals = [] if policy is None else [x for x in policy["Statement"] if x.get("Sid") != s["Sid"]]
    assert others == originals
    apply_freeze(once, other)
    assert (policy, s, s2, other) == before


@settings(max_examples=200, deadline=None)
@given(_policies, _runs, _principal_lists, st.lists(_statements(), min_size=1, max_size=3))
def test_property_someone_elses_additions_survive_thaw(policy, run, principals, added):
    sid = freeze_sid(run)
    added = [x for x in added if x.get("Sid") != sid]
    if statement_present(policy, sid) or not added:
        return
    frozen = apply_freeze(policy, freeze_statement(BUCKET, run, principals))
    current = copy.deepcopy(frozen)
    current["Statement"].extend(added)
    plan = thaw_policy(current, policy, sid)
    assert plan.action == "put" and plan.changed_meanwhile
    assert not statement_present(plan.policy, sid)
    assert plan.policy["Statement"] == ([] if policy is None else policy["Statement"]) + added
