"""Typed cloud errors, and the classification of what the tea/darabonba SDK stack raises.

Every SDK call goes through :mod:`acr_gc.cloud.calls`, which turns whatever the vendor
stack raised into one :class:`CloudError` (or a subclass) that says which call failed on
which resource, in one line, without any secret in it.

What the pinned SDK stack raises (alibabacloud-tea-openapi 0.4.6, darabonba-core 1.0.9,
alibabacloud-gateway-oss 0.0.30), found by reading the venv and provoking each case:

* ACR (RPC, ``OpenApiClient.do_request``): an HTTP 4xx/5xx response becomes
  ``alibabacloud_tea_openapi.exceptions.ClientException`` (4xx) /
  ``ServerException`` (5xx) / ``ThrottlingException`` (only when the response carries
  the ``x-ratelimit-*`` headers), all ``darabonba.exceptions.ResponseException`` with
  ``code``, ``status_code``, ``request_id`` and the parsed body in ``data``.
* OSS (ROA through the OSS gateway, ``OpenApiClient.execute``): a 4xx/5xx becomes a bare
  ``Tea.exceptions.TeaException`` with ``code`` from the XML error body (or the status
  number when the body is empty, e.g. HEAD) and ``data['statusCode']``,
  ``data['requestId']``; it arrives wrapped in ``darabonba.exceptions.UnretryableException``
  (``inner_exception``).
* Transport (refused, reset, dropped connection, connect/read timeout): requests raises
  an ``IOError`` subclass; ``DaraCore.do_action`` re-raises it as
  ``darabonba.exceptions.RetryError(str(e))`` (the requests exception stays as its
  ``__context__``) and the client wraps that in ``UnretryableException``.
* A 2xx body that is not valid JSON/XML (e.g. cut short): ``ValueError`` /
  ``JSONDecodeError`` / ``xml.parsers.expat.ExpatError`` wrapped the same way.
* ACR EE may also answer HTTP 200 with ``{"IsSuccess": false, "Code": ...}`` (a business
  error); the ACR adapter feeds that through :func:`classify_code` with the status 200.
  The transient codes (``SystemError``, ``Throttling*``, ``ServiceUnavailable`` …) are
  retried like a 5xx or a throttle; every other code is a one-line error at once.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, replace

# --------------------------------------------------------------------------- redaction

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
_MIN_SECRET_LEN = 6  # never redact trivially short strings (would mangle every message)


def register_secret(value: str | None) -> None:
    """Remember a secret so that :func:`redact` removes it from any text we emit."""
    if value and len(value) >= _MIN_SECRET_LEN:
        with _SECRETS_LOCK:
            _SECRETS.add(value)


def redact(text: str) -> str:
    """Replace every registered secret (and signature-looking material) in ``text``."""
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    # Signatures and tokens that may be echoed back by a server in an error body.
    text = re.sub(r"(?i)(signature=|credential=|x-acs-security-token[:=]\s*|securitytoken[=:]\s*)[^\s,;&]+",
                  r"\1***", text)
    return text


def one_line(text: object, limit: int = 300) -> str:
    s = " ".join(str(text).split())
    s = redact(s)
    return s if len(s) <= limit else s[: limit - 1] + "…"


# --------------------------------------------------------------------------- error types


class CloudError(Exception):
    """A failed cloud API call: service, action, resource, code, HTTP status, message.

    ``str(err)`` is one line, e.g.
    ``ACR ListRepoTag on cri-demo/ns/repo failed: REPO_NOT_EXIST (404): repo not exist [request 1A2B]``.
    """

    kind = "error"

    def __init__(
        self,
        service: str,
        action: str,
        resource: str,
        code: str | None,
        http_status: int | None,
        message: str,
        request_id: str | None = None,
        *,
        retryable: bool = False,
        attempts: int = 1,
    ) -> None:
        self.service = service
        self.action = action
        self.resource = resource
        self.code = code or "Unknown"
        self.http_status = http_status
        self.message = one_line(message)
        self.request_id = request_id or None
        self.retryable = retryable
        self.attempts = attempts
        super().__init__(str(self))

    def __str__(self) -> str:
        status = f" ({self.http_status})" if self.http_status else ""
        tail = f" [request {self.request_id}]" if self.request_id else ""
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        msg = f": {self.message}" if self.message else ""
        return one_line(
            f"{self.service} {self.action} on {self.resource} failed{tries}: {self.code}{status}{msg}{tail}",
            limit=600,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self):  # picklable across Prefect task boundaries
        return (
            _rebuild,
            (type(self), self.service, self.action, self.resource, self.code, self.http_status,
             self.message, self.request_id, self.retryable, self.attempts),
        )


def _rebuild(cls, service, action, resource, code, http_status, message, request_id, retryable, attempts):
    return cls(service, action, resource, code, http_status, message, request_id,
               retryable=retryable, attempts=attempts)


class AuthError(CloudError):
    """The credentials were refused (unknown key, bad signature, expired token, none found)."""

    kind = "auth"


class Forbidden(CloudError):
    """Authenticated but not allowed (RAM policy, bucket policy, e.g. a freeze's Deny)."""

    kind = "forbidden"


class NotFound(CloudError):
    """The resource does not exist (REPO_NOT_EXIST, NoSuchKey, HTTP 404, …)."""

    kind = "not_found"


class ClockSkew(CloudError):
    """The request's signed time is too far from the cloud's clock: fix this machine's clock."""

    kind = "clock_skew"


class Throttled(CloudError):
    """Still throttled after every retry."""

    kind = "throttled"


class Unavailable(CloudError):
    """Server errors (5xx) or the network (reset, refused, timeout) after every retry."""

    kind = "unavailable"


# --------------------------------------------------------------------------- classification

_AUTH_CODES = {
    "InvalidAccessKeyId",
    "InvalidAccessKeyId.NotFound",
    "InvalidAccessKeyId.Inactive",
    "InvalidAccessKeySecret",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidSecurityToken",
    "InvalidSecurityToken.Expired",
    "InvalidSecurityToken.Malformed",
    "InvalidSecurityToken.MismatchWithAccessKey",
    "SecurityTokenExpired",
    "MissingSecurityToken",
    "InvalidCredentials",  # raised client-side by tea-openapi when no credential is set
    "CredentialException",  # alibabacloud_credentials: the default chain found nothing
    "Forbidden.AccessKeyDisabled",
    "InvalidAuthorization",
    "MissingAuthorization",
    "AccessKeyIdNotFound",
}
# the cloud refused the request's signed time (ACR/POP and OSS both allow 15 minutes): the
# credentials are fine, the machine's clock is not, and the services' words do not say so
_CLOCK_SKEW_CODES = {"InvalidTimeStamp.Expired", "RequestTimeTooSkewed"}
CLOCK_SKEW_HINT = (
    "clock skew: this machine's clock is more than 15 minutes off the cloud's, so every signed "
    "request is refused; synchronise it (NTP) and run again"
)
_FORBIDDEN_CODES = {"AccessDenied", "Forbidden", "Forbidden.RAM", "NoPermission", "Forbidden.NoPermission"}
_THROTTLE_CODES = {
    "TotalQpsLimitExceeded",
    "QpsLimitExceeded",
    "SlowDown",
    "RequestLimitExceeded",
    "ServiceUnavailable.Throttling",
    "TooManyRequests",
}
# server-side trouble that passes: retried whatever HTTP status carried it (a 200 included)
_TRANSIENT_CODES = {
    "ServiceUnavailable",
    "InternalError",
    "InternalServerError",
    "SystemError",
    "SYSTEM_ERROR",
    "SystemBusy",
    "ServiceBusy",
    "ServiceTimeout",
}
_NOT_FOUND_CODES = {
    "REPO_NOT_EXIST",
    "TAG_NOT_EXIST",
    "NAMESPACE_NOT_EXIST",
    "INSTANCE_NOT_EXIST",
    "RULE_NOT_EXIST",
    "SOURCE_CODE_REPO_NOT_EXIST",
    "TASK_NOT_EXIST",
}


@dataclass(frozen=True)
class Classified:
    code: str
    http_status: int | None
    message: str
    request_id: str | None
    kind: str  # auth | clock_skew | forbidden | not_found | throttled | server | network | client | bad_response
    # transport failures where the request may already have been executed by the server
    ambiguous: bool = False

    @property
    def retryable(self) -> bool:
        return self.kind in ("throttled", "server", "network", "bad_response")


def classify_code(code: str | None, http_status: int | None) -> str:
    """The kind of a server-reported error, from its code and HTTP status."""
    c = code or ""
    if c in _CLOCK_SKEW_CODES:
        return "clock_skew"
    if c in _AUTH_CODES or c.startswith("InvalidAccessKeyId") or c.startswith("InvalidSecurityToken"):
        return "auth"
    if c.startswith("Throttling") or c in _THROTTLE_CODES or http_status == 429:
        return "throttled"
    if c in _FORBIDDEN_CODES or c.startswith("Forbidden") or c.startswith("NoPermission"):
        return "forbidden"
    if (
        c in _NOT_FOUND_CODES
        or c.startswith("NoSuch")
        or c.endswith("NOT_EXIST")
        or c.endswith("NotExist")
        or c.endswith(".NotFound")
        or c == "NotFound"
    ):
        return "not_found"
    if http_status is not None and http_status >= 500:
        return "server"
    if http_status == 404:
        return "not_found"
    if http_status in (401,):
        return "auth"
    if http_status == 403:
        return "forbidden"
    if (http_status is None or http_status < 300) and c in _TRANSIENT_CODES:
        return "server"
    return "client"


def _unwrap(exc: BaseException) -> BaseException:
    """Peel darabonba/Tea UnretryableException and RetryError layers off an SDK exception."""
    from Tea.exceptions import UnretryableException as TeaUnretryable

    seen = 0
    while seen < 5:
        seen += 1
        if isinstance(exc, TeaUnretryable) and getattr(exc, "inner_exception", None) is not None:
            exc = exc.inner_exception
            continue
        break
    return exc


def _transport(exc: BaseException) -> Classified | None:
    """A requests/urllib3/socket failure (possibly behind darabonba's RetryError)."""
    import requests
    from darabonba.exceptions import RetryError as DaraRetryError
    from Tea.exceptions import RetryError as TeaRetryError

    cause: BaseException | None = exc
    if isinstance(exc, (DaraRetryError, TeaRetryError)):
        cause = exc.__cause__ or exc.__context__ or exc
    if isinstance(cause, requests.exceptions.ConnectTimeout):
        return Classified("ConnectTimeout", None, "connect timed out", None, "network")
    if isinstance(cause, requests.exceptions.ReadTimeout):
        return Classified("ReadTimeout", None, "read timed out", None, "network", ambiguous=True)
    if isinstance(cause, requests.exceptions.ConnectionError):
        text = str(cause)
        refused = "refused" in text.lower() or "NewConnectionError" in text or "Name or service" in text
        if refused:
            return Classified("ConnectionRefused", None, _short_transport(text), None, "network")
        return Classified("ConnectionError", None, _short_transport(text), None, "network", ambiguous=True)
    if isinstance(cause, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        return Classified("ConnectionError", None, _short_transport(str(cause)), None, "network", ambiguous=True)
    if isinstance(cause, (ConnectionError, TimeoutError, OSError)):
        return Classified(type(cause).__name__, None, _short_transport(str(cause)), None, "network", ambiguous=True)
    if isinstance(exc, (DaraRetryError, TeaRetryError)):
        return Classified("NetworkError", None, _short_transport(str(exc.message)), None, "network", ambiguous=True)
    return None


def _short_transport(text: str) -> str:
    # requests messages are long reprs of nested urllib3 errors; keep the most telling part
    m = re.search(r"\((?:Caused by )?(\w+Error)\(?['\"]?([^'\")]*)", text)
    if m:
        return f"{m.group(1)}: {m.group(2)}".strip(": ")
    return text


def classify(exc: BaseException) -> Classified:
    """Classify any exception the SDK stack raises for one call."""
    c = _classify(exc)
    if c.kind == "clock_skew":
        c = replace(c, message=f"{CLOCK_SKEW_HINT} ({c.message})" if c.message else CLOCK_SKEW_HINT)
    return c


def _classify(exc: BaseException) -> Classified:
    from darabonba.exceptions import ResponseException
    from Tea.exceptions import TeaException

    inner = _unwrap(exc)
    transport = _transport(inner)
    if transport is not None:
        return transport

    if isinstance(inner, ResponseException):  # ACR: Client/Server/ThrottlingException
        status = getattr(inner, "status_code", None)
        data = inner.data if isinstance(inner.data, dict) else {}
        code = str(inner.code) if inner.code not in (None, "None") else (str(status) if status else "Unknown")
        message = data.get("Message") or data.get("message") or ""
        if not message and inner.message:
            message = re.sub(r"^code: \d+, ", "", str(inner.message))
            message = re.sub(r" request id: \S*$", "", message)
        request_id = getattr(inner, "request_id", None) or data.get("RequestId")
        if request_id in ("None", ""):
            request_id = None
        kind = classify_code(code, status)
        if type(inner).__name__ == "ThrottlingException":
            kind = "throttled"
        return Classified(code, status, message, request_id, kind)

    if isinstance(inner, TeaException):  # OSS gateway errors (and a few client-side ones)
        data = inner.data if isinstance(inner.data, dict) else {}
        status = data.get("statusCode")
        try:
            status = int(status) if status is not None else None
        except (TypeError, ValueError):
            status = None
        code = str(inner.code) if inner.code is not None else (str(status) if status else "Unknown")
        request_id = data.get("requestId") or data.get("RequestId")
        if request_id in ("None", ""):
            request_id = None
        message = inner.message or ""
        kind = classify_code(code, status)
        if status is None and kind == "client" and code not in ("Unknown",):
            # client-side SDK errors (missing parameters, CRC mismatch, credentials)
            if code in ("CrcNotMatched", "MD5NotMatched"):
                kind = "bad_response"
        return Classified(code, status, message or "", request_id, kind)

    name = type(inner).__name__
    if name == "CredentialException":
        return Classified("CredentialException", None, str(inner), None, "auth")
    if isinstance(inner, ValueError) or name in ("ExpatError", "ParseError"):
        # a 2xx whose body could not be parsed: cut short or garbled in transit
        return Classified("BadResponse", None, f"{name}: {inner}", None, "bad_response", ambiguous=True)
    return Classified(name, None, str(inner), None, "client")


_KIND_TO_TYPE: dict[str, type[CloudError]] = {
    "auth": AuthError,
    "clock_skew": ClockSkew,
    "forbidden": Forbidden,
    "not_found": NotFound,
    "throttled": Throttled,
    "server": Unavailable,
    "network": Unavailable,
}


def to_cloud_error(
    c: Classified, service: str, action: str, resource: str, *, attempts: int = 1
) -> CloudError:
    cls = _KIND_TO_TYPE.get(c.kind, CloudError)
    return cls(
        service,
        action,
        resource,
        c.code,
        c.http_status,
        c.message,
        c.request_id,
        retryable=c.retryable,
        attempts=attempts,
    )
