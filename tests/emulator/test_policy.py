"""Bucket policy validation and Deny matching, with hand-worked cases."""

from __future__ import annotations

import json

import pytest

from acr_gc.emulator.policy import PolicyError, glob_match, is_denied, parse_policy


def doc(*statements) -> str:
    return json.dumps({"Version": "1", "Statement": list(statements)})


def deny(actions, principals, resources, **extra) -> dict:
    return {"Effect": "Deny", "Action": actions, "Principal": principals, "Resource": resources, **extra}


FREEZE = doc(
    deny(["oss:PutObject", "oss:DeleteObject"], ["ci-bot"], ["acs:oss:*:*:reg-bucket/*"], Sid="acr-gc-freeze-run1")
)


@pytest.mark.parametrize(
    "pattern,value,expected",
    [
        ("*", "", True),
        ("*", "a/b/c", True),  # * crosses "/"
        ("docker/*", "docker/registry/v2/blobs/x", True),
        ("docker/*", "docker", False),
        ("docker/*", "docker/", True),  # * matches nothing
        ("a?c", "abc", True),
        ("a?c", "ac", False),
        ("a?c", "abbc", False),
        ("a.c", "abc", False),  # regex characters are literal
        ("[ab]", "a", False),
        ("[ab]", "[ab]", True),
        ("x*y*z", "xAAyBBz", True),
        ("x*y*z", "xAAzBBy", False),
    ],
)
def test_glob(pattern, value, expected):
    assert glob_match(pattern, value) is expected


def test_freeze_statement_denies_writes_of_the_named_principal_only():
    assert is_denied(FREEZE, "ci-bot", "oss:PutObject", "reg-bucket", "docker/registry/v2/blobs/a") is True
    assert is_denied(FREEZE, "ci-bot", "oss:DeleteObject", "reg-bucket", "x") is True
    assert is_denied(FREEZE, "acr-service", "oss:PutObject", "reg-bucket", "x") is False
    # reads are not named: allowed
    assert is_denied(FREEZE, "ci-bot", "oss:GetObject", "reg-bucket", "x") is False
    assert is_denied(FREEZE, "ci-bot", "oss:GetBucketStat", "reg-bucket", None) is False
    # another bucket is not covered
    assert is_denied(FREEZE, "ci-bot", "oss:PutObject", "other-bucket", "x") is False
    # the bucket itself (no key) is not matched by bucket/*
    assert is_denied(FREEZE, "ci-bot", "oss:PutObject", "reg-bucket", None) is False


@pytest.mark.parametrize(
    "action_pattern,action,expected",
    [
        ("oss:*", "oss:PutObject", True),
        ("oss:*", "oss:GetObject", True),
        ("oss:Put*", "oss:PutObject", True),
        ("oss:Put*", "oss:PutBucketPolicy", True),
        ("oss:Put*", "oss:DeleteObject", False),
        ("oss:putobject", "oss:PutObject", True),  # actions compare case-insensitively
        ("oss:PutObjec", "oss:PutObject", False),
        ("*", "oss:DeleteObject", True),
        ("ecs:*", "oss:DeleteObject", False),
    ],
)
def test_action_wildcards(action_pattern, action, expected):
    policy = doc(deny(action_pattern, "*", "acs:oss:*:*:b/*"))
    assert is_denied(policy, "anyone", action, "b", "k") is expected


@pytest.mark.parametrize(
    "resource,bucket,key,expected",
    [
        ("acs:oss:*:*:b/*", "b", "k", True),
        ("acs:oss:*:*:b/*", "bb", "k", False),
        ("acs:oss:*:*:b*", "bb", "k", True),  # b* covers bucket "bb" and its keys ("bb/k")
        ("acs:oss:*:*:b/docker/*", "b", "docker/x/y", True),
        ("acs:oss:*:*:b/docker/*", "b", "dockerx", False),
        ("acs:oss:*:*:b/exact.txt", "b", "exact.txt", True),
        ("acs:oss:*:*:b/exact.txt", "b", "exact.txt2", False),
        ("acs:oss:*:*:b/a:b", "b", "a:b", True),  # a colon inside the key
        ("acs:oss:cn-hangzhou:*:b/*", "b", "k", True),  # region of the bucket
        ("acs:oss:cn-beijing:*:b/*", "b", "k", False),
        ("acs:oss:*:1234567890:b/*", "b", "k", True),  # account field is not modelled
        ("acs:oss:*:*:*", "b", "k", True),
        ("acs:oss:*:*:b", "b", "k", False),  # the bucket, not its objects
        ("acs:ecs:*:*:b/*", "b", "k", False),
    ],
)
def test_resource_globs(resource, bucket, key, expected):
    policy = doc(deny("oss:PutObject", "*", resource))
    assert is_denied(policy, "p", "oss:PutObject", bucket, key, region="cn-hangzhou") is expected


def test_bucket_level_resource_matches_bucket_actions():
    policy = doc(deny("oss:ListObjects", "*", "acs:oss:*:*:b"))
    assert is_denied(policy, "p", "oss:ListObjects", "b", None) is True
    assert is_denied(policy, "p", "oss:ListObjects", "b2", None) is False


def test_principal_forms():
    single = doc(deny("oss:PutObject", "alice", "acs:oss:*:*:b/*"))
    listed = doc(deny("oss:PutObject", ["alice", "bob"], "acs:oss:*:*:b/*"))
    star = doc(deny("oss:PutObject", ["*"], "acs:oss:*:*:b/*"))
    assert is_denied(single, "alice", "oss:PutObject", "b", "k")
    assert not is_denied(single, "bob", "oss:PutObject", "b", "k")
    assert is_denied(listed, "bob", "oss:PutObject", "b", "k")
    assert not is_denied(listed, "carol", "oss:PutObject", "b", "k")
    assert is_denied(star, "carol", "oss:PutObject", "b", "k")
    # the principal is matched exactly, not as a glob or a prefix
    assert not is_denied(single, "alice2", "oss:PutObject", "b", "k")


def test_explicit_deny_wins_over_allow_and_allow_alone_denies_nothing():
    allow = {"Effect": "Allow", "Action": "oss:*", "Principal": "*", "Resource": "acs:oss:*:*:b/*"}
    both = doc(allow, deny("oss:DeleteObject", "*", "acs:oss:*:*:b/*"))
    assert is_denied(both, "p", "oss:DeleteObject", "b", "k") is True
    assert is_denied(both, "p", "oss:PutObject", "b", "k") is False
    assert is_denied(doc(allow), "p", "oss:DeleteObject", "b", "k") is False
    assert is_denied(None, "p", "oss:DeleteObject", "b", "k") is False
    assert is_denied("", "p", "oss:DeleteObject", "b", "k") is False


def test_deny_with_condition_applies_conservatively():
    policy = doc(deny("oss:PutObject", "*", "acs:oss:*:*:b/*", Condition={"IpAddress": {"acs:SourceIp": ["10.0.0.0/8"]}}))
    assert is_denied(policy, "p", "oss:PutObject", "b", "k") is True


@pytest.mark.parametrize(
    "text,code",
    [
        ("not json", "MalformedPolicy"),
        ("[1, 2]", "MalformedPolicy"),
        (b"\xff\xfe", "MalformedPolicy"),
        ('{"Statement": []}', "InvalidPolicyDocument"),
        ('{"Version": "2", "Statement": [{}]}', "InvalidPolicyDocument"),
        ('{"Version": "1"}', "InvalidPolicyDocument"),
        ('{"Version": "1", "Statement": []}', "InvalidPolicyDocument"),
        ('{"Version": "1", "Statement": ["x"]}', "InvalidPolicyDocument"),
        ('{"Version": "1", "Statement": [{"Effect": "Maybe", "Action": "oss:*", "Principal": "*", "Resource": "acs:oss:*:*:b/*"}]}', "InvalidPolicyDocument"),
        ('{"Version": "1", "Statement": [{"Effect": "Deny", "Principal": "*", "Resource": "acs:oss:*:*:b/*"}]}', "InvalidPolicyDocument"),
        ('{"Version": "1", "Statement": [{"Effect": "Deny", "Action": [], "Principal": "*", "Resource": "acs:oss:*:*:b/*"}]}', "InvalidPolicyDocument"),
        ('{"Version": "1", "Statement": [{"Effect": "Deny", "Action": "oss:*", "Principal": "*", "Resource": "b/*"}]}', "InvalidPolicyDocument"),
    ],
)
def test_parse_refuses_bad_documents(text, code):
    with pytest.raises(PolicyError) as err:
        parse_policy(text)
    assert err.value.code == code


def test_parse_accepts_string_and_list_forms():
    statements = parse_policy(FREEZE)
    assert len(statements) == 1
    s = statements[0]
    assert (s.effect, s.sid) == ("Deny", "acr-gc-freeze-run1")
    assert s.actions == ("oss:PutObject", "oss:DeleteObject")
    assert s.principals == ("ci-bot",)
    assert s.resources == ("acs:oss:*:*:reg-bucket/*",)
    one = parse_policy(doc({"Effect": "Allow", "Action": "oss:GetObject", "Principal": "*", "Resource": "acs:oss:*:*:b"}))
    assert one[0].actions == ("oss:GetObject",) and one[0].resources == ("acs:oss:*:*:b",)
