"""Bucket policy documents: validation and the Deny evaluation the emulated OSS enforces.

Pure functions, no I/O. The model is deliberately small and errs on the side of
denying: every access key is assumed to hold RAM permission for everything, so the
only thing that can refuse a request is an explicit ``Deny`` statement of the bucket
policy that matches the request's principal, action and resource. ``Allow`` statements
are validated but never needed. ``Condition`` blocks are accepted and *not* evaluated: a
Deny with a condition applies as if the condition held (a freeze must not leak).

Matching rules (OSS's documented syntax):

* ``Action``: ``oss:<Operation>``; ``*`` matches any run of characters and ``?`` one
  character (``oss:*``, ``oss:Put*``); compared case-insensitively.
* ``Principal``: ``"*"`` (everyone but the bucket owner's root, see ``storage.Bucket.denies``)
  or the exact principal string (a UID or a RAM ARN, whatever the dataset calls the key's
  principal); a single string or a list. Role ARNs (``acs:ram::<uid>:role/<name>``) compare
  their role name case-insensitively, as RAM role names do, and a role session
  (``arn:sts::<uid>:assumed-role/<name>/<session>``) names the same role.
* ``Resource``: ``acs:oss:<region>:<account>:<bucket>[/<key>]``; ``*`` and ``?`` are
  wildcards in every field; the region field must match the bucket's region when one is
  given; the account field is not modelled (any value matches). ``<bucket>`` alone names
  the bucket (bucket-level actions), ``<bucket>/<glob>`` names objects.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

OBJECT_WRITE_ACTIONS = frozenset({"oss:PutObject", "oss:DeleteObject"})

_ROLE = re.compile(r"^(?:acs:ram::(?P<uid>[^:]*):role/(?P<name>[^/]+)"
                   r"|arn:sts::(?P<suid>[^:]*):assumed-role/(?P<sname>[^/]+)(?:/.*)?)$", re.IGNORECASE)
_ARN = re.compile(r"^acs:ram::(?P<uid>[^:]+):(?P<rest>.+)$")

REGISTRY_ROLE_NAME = "aliyuncontainerregistrycustomizedossbucketrole"
"""The RAM role through which ACR EE reads and writes a customer's bucket (the vendor's
``AliyunContainerRegistryCustomizedOSSBucketRole``; role names compare case-insensitively)."""


def account_of(principal: str) -> str:
    """The account (UID) a principal belongs to: ``acs:ram::<uid>:…`` gives ``<uid>``; a
    bare name (a UID, or a test's short principal name) is an account of its own."""
    match = _ARN.match(principal)
    return match.group("uid") if match else principal


def is_account_root(principal: str, account: str) -> bool:
    """True for the account's root identity: ``acs:ram::<uid>:root`` or the bare UID itself."""
    return principal == account or principal == f"acs:ram::{account}:root"


def registry_principal(owner: str) -> str:
    """The principal the emulated registry acts as on ``owner``'s bucket (GC deletes,
    sweeps, pushes): the owner account's ACR role, bound by the bucket policy like anyone."""
    return f"acs:ram::{owner}:role/{REGISTRY_ROLE_NAME}"


def _role(principal: str) -> tuple[str, str] | None:
    match = _ROLE.match(principal.strip())
    if not match:
        return None
    return (match.group("uid") or match.group("suid") or ""), (match.group("name") or match.group("sname")).lower()


def principal_matches(pattern: str, principal: str) -> bool:
    """Whether a policy's Principal entry names the request's principal."""
    if pattern == "*" or pattern == principal:
        return True
    ours, theirs = _role(pattern), _role(principal)
    return ours is not None and ours == theirs


class PolicyError(ValueError):
    """The document cannot be used as a bucket policy; ``code`` is the OSS error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    principals: tuple[str, ...]
    resources: tuple[str, ...]
    sid: str | None = None


@lru_cache(maxsize=1024)
def _glob_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def glob_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """OSS policy wildcard match: ``*`` any run (including ``/`` and nothing), ``?`` one character."""
    return _glob_regex(pattern, ignore_case).fullmatch(value) is not None


def _string_list(value, field: str, sid) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise PolicyError("InvalidPolicyDocument", f"statement {sid or ''}: {field} must be a string or a non-empty list of strings")


def parse_policy(text: str | bytes) -> list[Statement]:
    """Validate a policy document as PutBucketPolicy does; returns its statements.

    Raises ``PolicyError`` with code ``MalformedPolicy`` (not a JSON object) or
    ``InvalidPolicyDocument`` (JSON, but not a usable policy).
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise PolicyError("MalformedPolicy", "The policy document is not valid UTF-8.") from None
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        raise PolicyError("MalformedPolicy", "The policy document is not valid JSON.") from None
    if not isinstance(doc, dict):
        raise PolicyError("MalformedPolicy", "The policy document must be a JSON object.")
    if "Version" not in doc:
        raise PolicyError("InvalidPolicyDocument", "The policy document has no Version.")
    if str(doc["Version"]) != "1":
        raise PolicyError("InvalidPolicyDocument", f"Unsupported policy Version {doc['Version']!r}; OSS policies use \"1\".")
    raw_statements = doc.get("Statement")
    if not isinstance(raw_statements, list) or not raw_statements:
        raise PolicyError("InvalidPolicyDocument", "The policy document needs a non-empty Statement list.")
    statements = []
    for raw in raw_statements:
        if not isinstance(raw, dict):
            raise PolicyError("InvalidPolicyDocument", "Every statement must be a JSON object.")
        sid = raw.get("Sid")
        effect = raw.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise PolicyError("InvalidPolicyDocument", f"statement {sid or ''}: Effect must be Allow or Deny")
        for field in ("Action", "Principal", "Resource"):
            if field not in raw:
                raise PolicyError("InvalidPolicyDocument", f"statement {sid or ''}: {field} is required")
        resources = _string_list(raw["Resource"], "Resource", sid)
        for res in resources:
            if not res.startswith("acs:oss:") or res.count(":") < 4:
                raise PolicyError(
                    "InvalidPolicyDocument", f"statement {sid or ''}: resource {res!r} is not acs:oss:<region>:<account>:<bucket>[/<key>]"
                )
        statements.append(
            Statement(
                effect=effect,
                actions=_string_list(raw["Action"], "Action", sid),
                principals=_string_list(raw["Principal"], "Principal", sid),
                resources=resources,
                sid=sid if isinstance(sid, str) else None,
            )
        )
    return statements


@lru_cache(maxsize=256)
def _statements_of(policy_json: str) -> tuple[Statement, ...]:
    try:
        return tuple(parse_policy(policy_json))
    except PolicyError:
        return ()


def _resource_matches(pattern: str, bucket: str, key: str | None, region: str | None) -> bool:
    # acs:oss:<region>:<account>:<bucket>[/<key>] -- the last field may itself contain ':'
    fields = pattern.split(":", 4)
    if len(fields) != 5 or fields[0] != "acs" or not glob_match(fields[1], "oss"):
        return False
    if region is not None and fields[2] and not glob_match(fields[2], region):
        return False
    target = bucket if key is None else f"{bucket}/{key}"
    return glob_match(fields[4], target)


def statement_matches(stmt: Statement, principal: str, action: str, bucket: str, key: str | None, region: str | None = None) -> bool:
    return (
        any(glob_match(a, action, ignore_case=True) for a in stmt.actions)
        and any(principal_matches(p, principal) for p in stmt.principals)
        and any(_resource_matches(r, bucket, key, region) for r in stmt.resources)
    )


def is_denied(
    policy_json: str | None,
    principal: str,
    action: str,
    bucket: str,
    key: str | None,
    region: str | None = None,
) -> bool:
    """True when an explicit Deny statement of the policy matches the request.

    ``key`` None means a bucket-level action (resource ``<bucket>``). A missing policy, or
    one that no longer parses, denies nothing (PutBucketPolicy never stores a bad one).
    """
    if not policy_json:
        return False
    statements = _statements_of(policy_json)
    return any(
        s.effect == "Deny" and statement_matches(s, principal, action, bucket, key, region) for s in statements
    )
