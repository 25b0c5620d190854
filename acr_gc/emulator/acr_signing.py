"""Verification of the ACS3-HMAC-SHA256 (tea-openapi V3) signature on ACR requests.

The canonical request is re-derived from what arrived on the wire exactly as
``alibabacloud_tea_openapi.utils.Utils.get_authorization`` builds it::

    METHOD \\n path \\n canonical query \\n canonical headers \\n signed header names \\n sha256(body)

* canonical query: parameters sorted by name, values percent-encoded with only ``~``
  left unescaped (``urllib.parse.quote(v, safe='~')``), joined ``k=v&…``;
* canonical headers: the headers named in ``SignedHeaders``, lower-case, values stripped,
  repeated values sorted and joined with ``,``, one ``name:value\\n`` each;
* the payload hash is recomputed from the received body (never trusted from the header).

String to sign: ``ACS3-HMAC-SHA256\\n`` + hex(sha256(canonical request)); signature:
hex(HMAC-SHA256(secret, string to sign)). Dates are checked against the REAL wall clock
(the emulated clock is for dataset time only). Errors never include the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Mapping, Sequence
from urllib.parse import quote

ALGORITHM = "ACS3-HMAC-SHA256"
MAX_SKEW_SECONDS = 15 * 60
NONCE_TTL_SECONDS = 2 * MAX_SKEW_SECONDS


class SignatureError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def canonical_query(pairs: Sequence[tuple[str, str]]) -> str:
    query = dict(pairs)  # the SDK sends each parameter once; a repeated one keeps its last value
    return "&".join(f"{k}={quote(query[k], safe='~', encoding='utf-8')}" for k in sorted(query))


def canonical_headers(signed: Sequence[str], headers: Mapping[str, list[str]]) -> str:
    out = []
    for name in signed:
        values = sorted(v.strip() for v in headers.get(name, []))
        out.append(f"{name}:{','.join(values)}\n")
    return "".join(out)


def string_to_sign(method: str, path: str, canon_query: str, canon_headers: str, signed: str, payload_hash: str) -> str:
    canonical = f"{method}\n{path or '/'}\n{canon_query}\n{canon_headers}\n{signed}\n{payload_hash}"
    return f"{ALGORITHM}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"


def sign(secret: str, to_sign: str) -> str:
    return hmac.new(secret.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def parse_authorization(value: str) -> tuple[str, list[str], str]:
    """``ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=a;b,Signature=hex`` → (AK, headers, signature)."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureError(400, "IncompleteSignature", f"The signature algorithm {algorithm!r} is not supported.")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            fields[key] = val
    try:
        return fields["Credential"], fields["SignedHeaders"].split(";"), fields["Signature"]
    except KeyError:
        raise SignatureError(
            400, "IncompleteSignature", "The request signature does not conform to Aliyun standards."
        ) from None


def _as_bytes(text: str) -> bytes:
    """A received signature as bytes: ``compare_digest`` raises TypeError on non-ASCII str."""
    return text.encode("utf-8", "backslashreplace")


def _parse_date(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


class NonceCache:
    """Nonces seen within the validity window; a reused nonce is a replay."""

    def __init__(self, ttl: float = NONCE_TTL_SECONDS):
        self.ttl = ttl
        self._seen: OrderedDict[str, float] = OrderedDict()

    def use(self, nonce: str, now: float) -> bool:
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if now - at <= self.ttl:
                break
            self._seen.popitem(last=False)
        if nonce in self._seen:
            return False
        self._seen[nonce] = now
        return True

    def clear(self) -> None:
        self._seen.clear()


def verify(
    *,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, list[str]],
    body: bytes,
    secrets: Mapping[str, str],
    nonces: NonceCache,
    wall_clock: float | None = None,
) -> str:
    """Check one request; return the access key id, or raise ``SignatureError``.

    ``headers`` maps lower-case names to all their values.
    """
    auth = (headers.get("authorization") or [""])[0]
    if not auth:
        raise SignatureError(400, "MissingAuthorization", "Authorization is mandatory for this action.")
    access_key_id, signed, signature = parse_authorization(auth)
    if access_key_id not in secrets:
        raise SignatureError(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
    if "host" not in signed or any(h != h.lower() for h in signed):
        raise SignatureError(
            400, "IncompleteSignature", "The request signature does not conform to Aliyun standards: host must be signed."
        )
    date = (headers.get("x-acs-date") or [""])[0]
    nonce = (headers.get("x-acs-signature-nonce") or [""])[0]
    if not date:
        raise SignatureError(400, "MissingX-acs-date", "x-acs-date is mandatory for this action.")
    if not nonce:
        raise SignatureError(400, "MissingX-acs-signature-nonce", "x-acs-signature-nonce is mandatory for this action.")
    try:
        sent = _parse_date(date).timestamp()
    except ValueError:
        raise SignatureError(
            400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted."
        ) from None
    now = time.time() if wall_clock is None else wall_clock
    if abs(now - sent) > MAX_SKEW_SECONDS:
        raise SignatureError(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
    payload_hash = hashlib.sha256(body).hexdigest()
    to_sign = string_to_sign(
        method.upper(), path, canonical_query(query), canonical_headers(signed, headers), ";".join(signed), payload_hash
    )
    expected = sign(secrets[access_key_id], to_sign)
    if not hmac.compare_digest(expected.encode(), _as_bytes(signature.strip().lower())):
        raise SignatureError(
            400,
            "IncompleteSignature",
            "The request signature does not conform to Aliyun standards. server string to sign is:" + to_sign,
        )
    if not nonces.use(nonce, now):
        raise SignatureError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
    return access_key_id
