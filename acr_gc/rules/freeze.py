"""The freeze (DESIGN section 5): one Deny statement merged into the bucket policy, and
what thaw must do to take it out again.

Pure functions over policy documents (the parsed JSON of an OSS bucket policy:
``{"Version": "1", "Statement": [{"Sid"?, "Effect", "Principal", "Action", "Resource",
"Condition"?}, …]}``), no I/O. The flow reads the policy, saves it in the ledger, and
then calls :func:`apply_freeze`; thaw reads the policy again and calls
:func:`thaw_policy`, which decides between restoring the saved original, deleting the
policy, removing only our statement, or doing nothing. Nothing here mutates its inputs:
the saved original must stay byte-for-byte what was read, because thaw restores it.

Typical use::

    sid = freeze_sid(run_id)
    validate_principals(cfg.freeze.principals, service_role_principals)
    statement = freeze_statement(bucket, run_id, cfg.freeze.principals)
    new_policy = apply_freeze(original, statement)          # PutBucketPolicy(new_policy)
    ...
    plan = thaw_policy(oss.get_policy(), original, sid, statement=statement)
    # plan.action: "put" (plan.policy) | "delete" | "none"; plan.note for the operator

**Actions denied** (:data:`FREEZE_ACTIONS`). OSS authorises many APIs under one RAM
action, so the list is the set of *actions* that change or remove object data or
object metadata, as named in OSS's RAM action table:

* ``oss:PutObject`` — PutObject, PostObject, AppendObject, PutSymlink, CopyObject and
  UploadPartCopy (as the write on the target), InitiateMultipartUpload, UploadPart,
  CompleteMultipartUpload; also the save-as of image/data processing (written to the
  target under ``oss:PutObject``; assumed from OSS's documentation, not verified).
* ``oss:DeleteObject`` — DeleteObject and DeleteMultipleObjects.
* ``oss:DeleteObjectVersion`` — permanent deletion of one version (versioned buckets).
* ``oss:AbortMultipartUpload``.
* ``oss:PutObjectAcl``, ``oss:PutObjectVersionAcl``, ``oss:PutObjectTagging``,
  ``oss:PutObjectVersionTagging``, ``oss:DeleteObjectTagging``,
  ``oss:DeleteObjectVersionTagging`` — metadata writes: they do not change the bytes GC
  measures, but tags can drive lifecycle rules and the vendor asks for *no* operations
  on the bucket during GC, so the freeze holds them too.

Deliberately not denied: every read (``oss:GetObject``, ``oss:GetObjectAcl``,
``oss:GetObjectVersion``, ``oss:ListObjects``, ``oss:ListObjectVersions``,
``oss:GetBucketStat``…: pulls and our own sampling must keep working), and
``oss:RestoreObject``/``oss:RestoreObjectVersion`` (they make an archived object
readable again; a read in effect). No wildcards (``oss:Put*``) are used, so the list is
auditable and cannot accidentally match a read action. The resource is
``acs:oss:*:*:<bucket>/*``: objects only; bucket-level actions (the policy itself,
lifecycle, versioning) are out of the freeze's scope.

**Principals and the registry's own role.** DESIGN says the registry's service role is
never among the denied principals, because GC itself deletes objects as that role.
:func:`validate_principals` refuses a configured principal that names it: any principal
equal (case-insensitively) to one of the ``service_role_principals`` the caller passes,
or naming the same RAM role (``acs:ram::<uid>:role/<name>`` and the bucket-policy form
``arn:sts::<uid>:assumed-role/<name>/<session>`` are compared by role name), and always
a role named in :data:`ACR_SERVICE_ROLE_NAMES`. Assumed, from Alibaba Cloud's ACR
documentation rather than verified against a live instance:
``AliyunContainerRegistryDefaultRole`` is the role ACR EE assumes for its default
(ACR-created) bucket, ``AliyunContainerRegistryCustomizedOSSBucketRole`` the one it
assumes for a custom bucket, and ``AliyunServiceRoleForContainerRegistry`` its
service-linked role.

``"*"`` is refused as well. OSS applies a ``"*"`` statement without a Condition to
everyone except the bucket owner's root — the RAM role the registry assumes included — so
a ``"*"`` freeze denies GC's own deletes and every push. Adding a Condition does not help:
OSS documents that a ``"*"`` statement *with* a Condition applies to the owner too, and
no condition key OSS bucket policies evaluate reliably names the calling role. So
:func:`freeze_statement` never adds a Condition, and the freeze lists explicit principals
(the UIDs/ARNs of the pushers and CI systems) only.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

SID_PREFIX = "AcrGcFreeze"

FREEZE_ACTIONS: tuple[str, ...] = (
    "oss:PutObject",
    "oss:DeleteObject",
    "oss:DeleteObjectVersion",
    "oss:AbortMultipartUpload",
    "oss:PutObjectAcl",
    "oss:PutObjectVersionAcl",
    "oss:PutObjectTagging",
    "oss:PutObjectVersionTagging",
    "oss:DeleteObjectTagging",
    "oss:DeleteObjectVersionTagging",
)
"""The object write/delete actions the freeze denies (see the module docstring)."""

ACR_SERVICE_ROLE_NAMES: tuple[str, ...] = (
    "AliyunContainerRegistryDefaultRole",
    "AliyunContainerRegistryCustomizedOSSBucketRole",
    "AliyunServiceRoleForContainerRegistry",
)
"""RAM role names ACR EE uses to reach its bucket (assumed from the vendor's docs)."""

_ROLE_ARN = re.compile(r"^acs:ram::[^:]*:role/(?P<name>[^/]+)$", re.IGNORECASE)
_ASSUMED_ROLE_ARN = re.compile(r"^arn:sts::[^:]*:assumed-role/(?P<name>[^/]+)(/.*)?$", re.IGNORECASE)


class FreezeError(ValueError):
    """The freeze cannot be built as configured; the message is one line for the operator."""


@dataclass(frozen=True)
class ThawPlan:
    """What thaw must do to the bucket policy.

    ``action``: ``"put"`` (PutBucketPolicy with ``policy``), ``"delete"``
    (DeleteBucketPolicy; ``policy`` is None) or ``"none"`` (leave the bucket alone).
    ``note`` is empty when thaw simply undoes the freeze (restores the original or
    deletes the policy there was none of); otherwise it is one line for the operator
    (already thawed; changed by someone else). ``changed_meanwhile`` is True when someone
    else changed the policy while it was frozen, so thaw removed only our statement
    instead of restoring the original.
    """

    action: Literal["put", "delete", "none"]
    policy: dict | None
    note: str
    changed_meanwhile: bool = field(default=False)


# -- names


def freeze_sid(run_id: str) -> str:
    """The Sid of run ``run_id``'s freeze statement: ``AcrGcFreeze`` + the run id's letters
    and digits.

    Deterministic, so a re-run of the same run (or ``acr-gc thaw``) finds the statement
    again from the run id alone; alphanumeric, so it is a valid Sid anywhere; prefixed,
    so any tool can recognise a freeze of ours (:func:`is_freeze_sid`). Two run ids that
    differ only in punctuation share a Sid — run ids are generated, so that is accepted.
    """
    if not isinstance(run_id, str):
        raise FreezeError(f"run id must be a string, not {type(run_id).__name__}")
    cleaned = re.sub(r"[^A-Za-z0-9]", "", run_id)
    if not cleaned:
        raise FreezeError(f"run id {run_id!r} has no letters or digits to name a freeze statement")
    return SID_PREFIX + cleaned


def is_freeze_sid(sid: Any) -> bool:
    """True for a Sid made by :func:`freeze_sid` (any run's)."""
    return isinstance(sid, str) and sid.startswith(SID_PREFIX) and len(sid) > len(SID_PREFIX)


# -- principals


def _role_name(principal: str) -> str | None:
    """The RAM role a principal names (lower case), or None when it names no role."""
    text = principal.strip()
    for pattern in (_ROLE_ARN, _ASSUMED_ROLE_ARN):
        match = pattern.match(text)
        if match:
            return match.group("name").lower()
    return None


def validate_principals(principals: Iterable[str], service_role_principals: Iterable[str] = ()) -> list[str]:
    """Check the configured freeze principals; returns them stripped, without duplicates.

    Raises :class:`FreezeError` for an empty list, a non-string or blank principal,
    ``"*"``, or a principal that is the registry's own service role (see the module
    docstring for how a role is recognised): either would deny GC's own deletes.
    """
    if isinstance(principals, str):
        raise FreezeError("freeze principals must be a list of strings, not one string")
    principals = list(principals)
    if not principals:
        raise FreezeError("freeze.principals is empty: name the RAM users or roles that write to the bucket")
    service = [s.strip() for s in service_role_principals if isinstance(s, str) and s.strip()]
    service_exact = {s.lower() for s in service}
    service_roles = {name for name in (_role_name(s) for s in service) if name}
    service_roles |= {name.lower() for name in ACR_SERVICE_ROLE_NAMES}
    result: list[str] = []
    for principal in principals:
        if not isinstance(principal, str) or not principal.strip():
            raise FreezeError(f"freeze principal {principal!r} is not a non-empty string")
        text = principal.strip()
        if text == "*":
            raise FreezeError(
                '"*" would also deny the registry\'s own RAM role (only the bucket owner is exempt), so GC\'s '
                "deletes and every push would fail: list the RAM users or roles that write to the bucket")
        role = _role_name(text)
        if text.lower() in service_exact or (role and role in service_roles) or text.lower() in service_roles:
            raise FreezeError(
                f"freeze principal {text!r} is the registry's own service role; remove it from "
                "freeze.principals (GC deletes as that role and must never be denied)"
            )
        if text not in result:
            result.append(text)
    return result


# -- the statement and the policy


def freeze_statement(bucket: str, run_id: str, principals: list[str]) -> dict:
    """The freeze's Deny statement for ``bucket``: :data:`FREEZE_ACTIONS` on every object,
    for ``principals`` (validated by :func:`validate_principals`; without the caller's
    service role list, only the known ACR role names are refused here).

    No Condition, ever: see the module docstring for why one would make things worse.
    """
    if not isinstance(bucket, str) or not bucket or "/" in bucket or "*" in bucket or ":" in bucket:
        raise FreezeError(f"bucket name {bucket!r} is not a plain OSS bucket name")
    return {
        "Sid": freeze_sid(run_id),
        "Effect": "Deny",
        "Principal": validate_principals(principals),
        "Action": list(FREEZE_ACTIONS),
        "Resource": [f"acs:oss:*:*:{bucket}/*"],
    }


def _as_document(policy: dict | str | bytes | None, what: str) -> dict | None:
    """A deep copy of a policy document (parsing JSON text), or None for no policy."""
    if policy is None:
        return None
    if isinstance(policy, bytes):
        policy = policy.decode("utf-8")
    if isinstance(policy, str):
        if not policy.strip():
            return None
        try:
            policy = json.loads(policy)
        except json.JSONDecodeError as err:
            raise FreezeError(f"the {what} policy is not valid JSON: {err.msg}") from None
    if not isinstance(policy, dict):
        raise FreezeError(f"the {what} policy must be a JSON object, not {type(policy).__name__}")
    return copy.deepcopy(policy)


def _statements(document: dict, what: str) -> list:
    """The document's statements as a list (a lone statement object counts as one)."""
    raw = document.get("Statement")
    if raw is None:
        return []
    if isinstance(raw, dict):
        return [raw]
    if not isinstance(raw, list):
        raise FreezeError(f"the {what} policy's Statement must be a list, not {type(raw).__name__}")
    return raw


def _sid_of(statement: Any) -> Any:
    return statement.get("Sid") if isinstance(statement, dict) else None


def _same_json(a: Any, b: Any) -> bool:
    """JSON equality: key order irrelevant, list order relevant, ``true`` ≠ ``1`` ≠ ``1.0``."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def statement_present(policy: dict | str | None, sid: str) -> bool:
    """True when the policy has a statement with this Sid."""
    document = _as_document(policy, "bucket")
    return document is not None and any(_sid_of(s) == sid for s in _statements(document, "bucket"))


def freeze_sids(policy: dict | str | None) -> list[str]:
    """The Sids of every freeze statement of ours in the policy (any run's), in order.

    The flow's pre-check uses it to find a stale freeze left by an earlier run.
    """
    document = _as_document(policy, "bucket")
    if document is None:
        return []
    return [sid for sid in (_sid_of(s) for s in _statements(document, "bucket")) if is_freeze_sid(sid)]


def apply_freeze(original: dict | str | None, statement: dict) -> dict:
    """The frozen policy: ``original``'s statements, untouched and in order, then ours.

    With no original policy, a new ``{"Version": "1", "Statement": [statement]}``. A
    statement with our Sid already there (a re-run reusing its freeze) is replaced in
    place rather than stacked — and any further copies dropped — so applying twice
    equals applying once. Other top-level keys of the original are kept. Inputs are
    never mutated.
    """
    if not isinstance(statement, dict) or not isinstance(statement.get("Sid"), str):
        raise FreezeError("the freeze statement must be a JSON object with a Sid")
    ours = copy.deepcopy(statement)
    document = _as_document(original, "original")
    if document is None:
        return {"Version": "1", "Statement": [ours]}
    merged: list = []
    placed = False
    for existing in _statements(document, "original"):
        if _sid_of(existing) == ours["Sid"]:
            if not placed:
                merged.append(copy.deepcopy(ours))
                placed = True
            continue
        merged.append(existing)
    if not placed:
        merged.append(ours)
    document.setdefault("Version", "1")
    document["Statement"] = merged
    return document


def _without_sid(document: dict, sid: str) -> dict:
    result = copy.deepcopy(document)
    result["Statement"] = [s for s in _statements(document, "current") if _sid_of(s) != sid]
    return result


def thaw_policy(
    current: dict | str | None,
    original: dict | str | None,
    sid: str,
    *,
    statement: dict | None = None,
) -> ThawPlan:
    """What thaw must do, given the policy on the bucket now and the one saved before.

    * ``current`` has no statement ``sid`` → ``"none"``: already thawed (or never frozen);
      whatever is there now is not ours to change.
    * ``current`` is exactly what the freeze put (JSON-equal to
      ``apply_freeze(original, <our statement>)``) → restore ``original`` (``"put"``), or
      ``"delete"`` when there was no policy before. Our statement is ``statement`` when
      the caller passes it (then an edit of our own statement also counts as someone
      else's change), otherwise the one found in ``current``.
    * otherwise someone else changed the policy while frozen → remove only our statement
      from ``current`` and put the rest (``"put"``), never overwriting their change; when
      nothing is left, ``"delete"`` (OSS refuses a policy with no statements, so an empty
      document cannot be put back even if there was a policy before — the note says so).

    The original is returned as saved (a deep copy), so the restore is JSON-equal. The
    saved original is expected to be the policy from *before* any freeze of this run (the
    ledger keeps the first one read); if it already held our Sid, restoring it would put
    that statement back, so the flow must not save a frozen policy as the original.
    """
    if not isinstance(sid, str) or not sid:
        raise FreezeError("thaw needs the freeze statement's Sid")
    now = _as_document(current, "current")
    before = _as_document(original, "original")
    if now is None or not any(_sid_of(s) == sid for s in _statements(now, "current")):
        where = "the bucket has no policy" if now is None else "the bucket policy has no such statement"
        return ThawPlan("none", None, f"already thawed: {where} ({sid}); nothing to do")
    if statement is not None and (not isinstance(statement, dict) or statement.get("Sid") != sid):
        raise FreezeError(f"the freeze statement passed to thaw does not have Sid {sid!r}")
    ours = statement if statement is not None else next(s for s in _statements(now, "current") if _sid_of(s) == sid)
    if _same_json(now, apply_freeze(before, ours)):
        if before is None:
            return ThawPlan("delete", None, "")
        return ThawPlan("put", before, "")
    remaining = _without_sid(now, sid)
    changed = (
        f"the bucket policy was changed by someone else while frozen and was not overwritten: "
        f"only freeze statement {sid} was removed"
    )
    if not remaining["Statement"]:
        if before is None:
            return ThawPlan("delete", None, f"{changed}; nothing else was left, so the policy was deleted", True)
        return ThawPlan(
            "delete",
            None,
            f"{changed}; no other statement was left (the original's had been removed meanwhile), "
            "so the policy was deleted — OSS accepts no empty policy",
            True,
        )
    return ThawPlan("put", remaining, changed, True)
