"""The emulator's signature checks, fuzzed: no crash, no accepted forgery.

Genuine requests are recorded on the wire: the product's own ACR and OSS adapters (the
real alibabacloud-cr20181201 and alibabacloud-oss20190517 SDKs: ACS3-HMAC-SHA256 and
OSS4-HMAC-SHA256) and oss2 (header V1, and its own V4) talk to the emulator through a
recording proxy. Hypothesis then changes ONE thing in one of them — a header, a query
parameter, the body, the method, the path, the signature, the AccessKey ID, the
Authorization header's structure (truncated, reordered, replaced by random bytes, unicode
or a huge value) — and hands the result to the verifier as the server decodes it
(``acr_signing.verify``, ``oss_signing.verify``); a few go to the running emulator over
HTTP. The verifier may only refuse with its own error type (over HTTP: never a 5xx).

Which parts a signature covers is defined here, from the protocols, not from the verifiers:

* ACS3-HMAC-SHA256: method, path, every query parameter, the headers the request's own
  ``SignedHeaders`` names (values trimmed), the body (its SHA-256 is signed).
* OSS4-HMAC-SHA256: method, bucket and key, every query parameter, every ``x-oss-*``
  header, Content-Type, Content-MD5 and the ``AdditionalHeaders`` (values trimmed); the
  payload is ``UNSIGNED-PAYLOAD``: the body is not signed.
* OSS V1: method, Content-MD5, Content-Type, Date, every ``x-oss-*`` header (values as
  sent), bucket and key, and the query parameters oss2 signs (its own sub-resource list).

Each mutation is labelled ``forged`` (signed content, signature or identity changed: must
be refused), ``same`` (only unsigned parts changed: must be accepted, as the signer) or
``either`` (a change of form a strict and a lenient verifier may judge differently:
repeated query parameters, method case, a doubled slash, whitespace in the header).
"""

from __future__ import annotations

import hashlib
import http.client
import re
import threading
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from types import SimpleNamespace
from typing import Callable
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import oss2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acr_gc.cloud.acr import AcrClient
from acr_gc.cloud.credentials import from_keys
from acr_gc.cloud.oss import OssClient
from acr_gc.config import Target
from acr_gc.emulator import acr_signing, oss_signing
from acr_gc.emulator import dataset as ds
from http_kit import LoopbackHttpServer

pytestmark = pytest.mark.slow

AK, SECRET = "LTAI-fuzz-signer", "fuzz-signer-secret"
OTHER_AK, OTHER_SECRET = "LTAI-fuzz-other", "fuzz-other-secret"
INSTANCE, BUCKET = "cri-fuzz", "cri-fuzz-storage"
DATASET = {
    "clock": "2026-11-01T00:00:00Z",
    "credentials": [{"access_key_id": AK, "access_key_secret": SECRET, "principal": "signer"},
                    {"access_key_id": OTHER_AK, "access_key_secret": OTHER_SECRET, "principal": "other"}],
    "layers": {"sha256:" + "1" * 64: 100},
    "instances": [{"instance_id": INSTANCE, "name": "fuzz", "region": "cn-hangzhou", "gc_whitelisted": True,
                   "bucket": BUCKET, "namespaces": ["ns"],
                   "repositories": [{"namespace": "ns", "name": "app", "source_code": None, "build_rules": [],
                                     "sync_rules": [],
                                     "tags": [{"tag": "v1", "digest": "sha256:" + "2" * 64,
                                               "updated": "2026-10-01T00:00:00Z", "layers": ["sha256:" + "1" * 64]}]}],
                   "charts": [], "lifecycle_rules": []}],
    "buckets": [{"name": BUCKET, "versioning": "Enabled", "lifecycle": [], "policy": None,
                 "extra_objects": [{"key": "docs/read me.txt", "size": 10}]}],
}
ACR_SECRETS = {AK: SECRET, OTHER_AK: OTHER_SECRET}
OSS_CREDENTIALS = {c["access_key_id"]: ds.Credential(**c) for c in DATASET["credentials"]}
TRANSPORT = {"content-length", "transfer-encoding", "connection", "keep-alive", "accept-encoding"}
# The parameters oss2 puts into a V1 signature: the client's list, not the emulator's.
V1_SIGNED_PARAMS = oss2.auth.ProviderAuth._subresource_key_set


# ---- a request as the server decodes it ------------------------------------------------------


@dataclass(frozen=True)
class Wire:
    method: str
    path: str  # percent-decoded
    query: tuple[tuple[str, str], ...]  # decoded, wire order, blank values kept
    headers: tuple[tuple[str, str], ...]  # lower-case names, wire order, repeats kept
    body: bytes
    scheme: str  # "acs3" | "oss4" | "oss1": how it was signed

    def values(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n == name]

    @property
    def authorization(self) -> str:
        return self.values("authorization")[0]


def decoded(method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> Wire:
    split = urlsplit(target)
    named = tuple((n.lower(), v) for n, v in headers if n.lower() not in TRANSPORT)
    auth = dict(named).get("authorization", "")
    scheme = "acs3" if auth.startswith("ACS3") else "oss4" if auth.startswith("OSS4") else "oss1"
    return Wire(method, unquote(split.path), tuple(parse_qsl(split.query, keep_blank_values=True)), named, body, scheme)


# ---- the verifiers, fed as the servers feed them ----------------------------------------------


def verify(wire: Wire) -> str | None:
    """The AccessKey ID the verifier accepted, or None when it refused with its own error."""
    if wire.scheme == "acs3":
        grouped: dict[str, list[str]] = {}
        for name, value in wire.headers:
            grouped.setdefault(name, []).append(value)
        try:
            return acr_signing.verify(method=wire.method, path=wire.path, query=list(wire.query), headers=grouped,
                                      body=wire.body, secrets=ACR_SECRETS, nonces=acr_signing.NonceCache())
        except acr_signing.SignatureError:
            return None
    joined: dict[str, str] = {}
    for name, value in wire.headers:
        joined[name] = joined[name] + "," + value if name in joined else value
    bucket, _, key = wire.path.lstrip("/").partition("/")
    request = oss_signing.SignedRequest(wire.method.upper(), bucket, key, list(wire.query), joined)
    try:
        return oss_signing.verify(request, OSS_CREDENTIALS).credential.access_key_id
    except oss_signing.AuthError:
        return None


# ---- what each protocol signs (independent of the verifiers) ----------------------------------


def _values(wire: Wire, name: str, trim: bool) -> tuple[str, ...]:
    return tuple(sorted(v.strip() if trim else v for v in wire.values(name)))


def acs3_signed_names(wire: Wire) -> list[str]:
    return re.search(r"SignedHeaders=([^,]*)", wire.authorization).group(1).split(";")


def oss4_additional(wire: Wire) -> set[str]:
    found = re.search(r"AdditionalHeaders=([^,]*)", wire.authorization)
    return {name.strip().lower() for name in found.group(1).split(";")} if found else set()


def signed_content(wire: Wire, original: Wire, strict: bool) -> tuple:
    """The signed content of ``wire`` under ``original``'s signature, strictly (every
    repetition, spelling and space) or leniently (what a server acts on: header values
    trimmed where the protocol trims them, the last of repeated parameters)."""
    method = wire.method if strict else wire.method.upper()
    params = tuple(sorted(wire.query)) if strict else tuple(sorted(dict(wire.query).items()))
    if wire.scheme == "acs3":
        headers = tuple(_values(wire, name, trim=not strict) for name in acs3_signed_names(original))
        return method, wire.path, params, headers, hashlib.sha256(wire.body).hexdigest()
    names = {n for n, _ in wire.headers + original.headers}
    if wire.scheme == "oss4":
        signed = {n for n in names if n.startswith("x-oss-") or n in ("content-type", "content-md5")}
        headers = tuple((n, _values(wire, n, trim=not strict)) for n in sorted(signed | oss4_additional(original)))
    else:
        oss_headers = {n for n in names if n.startswith("x-oss-")}
        headers = tuple((n, tuple(wire.values(n))) for n in sorted(oss_headers)) + tuple(
            (n, ",".join(wire.values(n))) for n in ("content-md5", "content-type", "date"))  # absent: ""
        params = tuple(sorted(p for p in (wire.query if strict else dict(wire.query).items())
                              if p[0] in V1_SIGNED_PARAMS))
    bucket, _, key = wire.path.lstrip("/").partition("/")
    path = wire.path if strict else (bucket, key)
    return method, path, params, headers


def label_of(mutated: Wire, original: Wire) -> str:
    if signed_content(mutated, original, strict=True) == signed_content(original, original, strict=True):
        return "same"
    if signed_content(mutated, original, strict=False) == signed_content(original, original, strict=False):
        return "either"
    return "forged"


# ---- recording genuine requests -----------------------------------------------------------------


class Recorder:
    """A proxy in front of the emulator that forwards byte for byte and keeps every request."""

    def __init__(self, upstream: str):
        self.captured: list[Wire] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.captured.append(decoded(self.command, self.path, self.headers.items(), body))
                status, headers, data = send_raw(upstream, self.command, self.path, self.headers.items(), body)
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in TRANSPORT:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward

        self.server = LoopbackHttpServer(Handler)
        self.endpoint = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def send_raw(endpoint: str, method: str, target: str, headers, body: bytes):
    """One request exactly as given (repeated headers, any Host); (status, headers, body)."""
    connection = http.client.HTTPConnection(endpoint, timeout=30)
    try:
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            if name.lower() not in TRANSPORT:
                connection.putheader(name, value.encode("latin-1"))
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        connection.close()


def encoded_target(wire: Wire) -> str:
    query = urlencode(wire.query, quote_via=quote, safe="~")
    return quote(wire.path, safe="/~") + (f"?{query}" if query else "")


class Recorded(dict):
    """Recorded requests by scheme; short in a falsifying example's printout."""

    def __repr__(self) -> str:
        return "<recorded: " + ", ".join(f"{len(wires)} {scheme}" for scheme, wires in self.items()) + ">"


@pytest.fixture(scope="module")
def loaded_emulator(emulator_process):
    emulator_process.load(DATASET)
    yield emulator_process
    emulator_process.reset()


@pytest.fixture(scope="module")
def genuine(loaded_emulator) -> dict[str, list[Wire]]:
    """Requests the SDKs signed, by scheme; every one was answered 2xx by the emulator."""
    recorder = Recorder(loaded_emulator.acr_endpoint)
    oss_recorder = Recorder(loaded_emulator.oss_endpoint)
    try:
        target = Target(region="cn-hangzhou", instance_id=INSTANCE, bucket=BUCKET, acr_endpoint=recorder.endpoint,
                        oss_endpoint=oss_recorder.endpoint)
        keys = from_keys(AK, SECRET)
        acr = AcrClient(target, credentials=keys)
        acr.get_instance()
        acr.list_namespaces()
        repo = acr.list_repositories()[0]
        acr.list_repo_tags(repo.repo_id)
        acr.gc_list()
        oss = OssClient(target, credentials=keys)
        oss.bucket_stat()
        oss.put_object("fuzz/new object.bin", b"payload", content_type="application/octet-stream")
        oss.get_object("docs/read me.txt")
        oss.list_objects(prefix="docs/", max_keys=5)
        oss.get_versioning()
        for auth in (oss2.Auth(AK, SECRET), oss2.AuthV4(AK, SECRET)):
            bucket = oss2.Bucket(auth, f"http://{oss_recorder.endpoint}", BUCKET, region="cn-hangzhou")
            bucket.get_object("docs/read me.txt").read()
            bucket.list_objects(prefix="docs/", max_keys=3)
            bucket.get_bucket_stat()
            bucket.put_object("fuzz/v1.txt", b"v1 body", headers={"Content-Type": "text/plain",
                                                                  "x-oss-meta-owner": "fuzz"})
    finally:
        recorder.close()
        oss_recorder.close()
    captured = recorder.captured + oss_recorder.captured
    by_scheme = Recorded({scheme: [w for w in captured if w.scheme == scheme] for scheme in ("acs3", "oss4", "oss1")})
    assert all(len(ws) >= 4 for ws in by_scheme.values()), {k: len(v) for k, v in by_scheme.items()}
    return by_scheme


def test_every_genuine_request_is_accepted_as_its_signer(genuine):
    """The baseline: unchanged, each recorded request verifies, as the key that signed it."""
    for wires in genuine.values():
        for wire in wires:
            assert verify(wire) == AK, wire


# ---- mutations: one change each, with its label ----------------------------------------------------

latin1 = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40)
unicode_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
huge = st.builds(lambda char, n: char * n, st.characters(min_codepoint=0x21, max_codepoint=0xFF),
                 st.integers(1_000, 200_000))
header_values = st.one_of(latin1, huge, st.sampled_from(["", " ", "\t", "UNSIGNED-PAYLOAD", "application/json"]))
header_names = st.one_of(
    st.sampled_from(["x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce", "x-acs-foo", "host",
                     "content-type", "content-md5", "date", "x-oss-date", "x-oss-content-sha256", "x-oss-meta-a",
                     "user-agent", "accept", "range", "x-forwarded-for"]),
    st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True))
query_text = st.one_of(unicode_text, huge, st.sampled_from(["", "0", "-1", "99999999999", "%", "&", "=", "+"]))


@dataclass(frozen=True)
class Mutation:
    wire: Wire
    label: str
    what: str


def _with_headers(wire: Wire, headers) -> Wire:
    return replace(wire, headers=tuple(headers))


def mutate_header(data, wire: Wire) -> Mutation:
    names = sorted({n for n, _ in wire.headers if n != "authorization"})
    op = data.draw(st.sampled_from(["set", "add", "remove"]), label="header op")
    if op == "remove":
        name = data.draw(st.sampled_from(names), label="name")
        changed = _with_headers(wire, [(n, v) for n, v in wire.headers if n != name])
    elif op == "set":
        name = data.draw(st.sampled_from(names), label="name")
        value = data.draw(header_values, label="value")
        changed = _with_headers(wire, [(n, value if n == name else v) for n, v in wire.headers])
    else:
        name = data.draw(header_names.filter(lambda n: n != "authorization"), label="name")
        value = data.draw(header_values, label="value")
        changed = _with_headers(wire, wire.headers + ((name, value),))
    return Mutation(changed, label_of(changed, wire), f"header {op} {name}")


def mutate_query(data, wire: Wire, values=query_text) -> Mutation:
    names = [n for n, _ in wire.query]
    op = data.draw(st.sampled_from(["set", "add", "remove", "prepend"] if names else ["add"]), label="query op")
    if op == "remove":
        name = data.draw(st.sampled_from(names), label="name")
        query = [(n, v) for n, v in wire.query if n != name]
    elif op == "set":
        name = data.draw(st.sampled_from(names), label="name")
        value = data.draw(values, label="value")
        query = [(n, value if n == name else v) for n, v in wire.query]
    else:  # a parameter added after the others, or a repeat put in front of them
        name = data.draw(st.one_of(st.sampled_from(names or ["x"]), unicode_text.filter(bool),
                                   st.sampled_from(["acl", "stat", "versionId", "x-oss-process", "Action"])),
                         label="name")
        value = data.draw(values, label="value")
        query = [*wire.query, (name, value)] if op == "add" else [(name, value), *wire.query]
    changed = replace(wire, query=tuple(query))
    return Mutation(changed, label_of(changed, wire), f"query {op} {name}")


def mutate_body(data, wire: Wire) -> Mutation:
    appended = st.builds(lambda tail: wire.body + tail, st.binary(min_size=1, max_size=8))
    body = data.draw(st.one_of(st.binary(max_size=64), appended), label="body")
    changed = replace(wire, body=body)
    return Mutation(changed, label_of(changed, wire), "body")


def mutate_method(data, wire: Wire) -> Mutation:
    method = data.draw(st.one_of(st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"]),
                                 st.just(wire.method.lower()), st.from_regex(r"[A-Za-z]{1,10}", fullmatch=True)),
                       label="method")
    changed = replace(wire, method=method)
    return Mutation(changed, label_of(changed, wire), f"method {method}")


def mutate_path(data, wire: Wire) -> Mutation:
    at = data.draw(st.integers(0, len(wire.path)), label="at")
    path = data.draw(st.one_of(
        st.builds(lambda s: wire.path[:at] + s + wire.path[at:], unicode_text.filter(bool)),
        st.just(wire.path[:at] or "/"),
        st.just("/" + wire.path),
        st.builds(lambda s: "/" + s, unicode_text)), label="path")
    changed = replace(wire, path=path)
    return Mutation(changed, label_of(changed, wire), "path")


BASE64_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
SIGNATURE = {"acs3": r"(Signature=)([0-9a-f]+)$", "oss4": r"(Signature=)([0-9a-f]+)$",
             "oss1": r"^(OSS [^:]+:)([A-Za-z0-9+/=]+)$"}
CREDENTIAL = {"acs3": r"(Credential=)([^,]+)", "oss4": r"(Credential=)([^/,]+)", "oss1": r"^(OSS )([^:]+)"}


def mutate_authorization(data, wire: Wire) -> Mutation:
    """Changes of the Authorization header alone; labelled by what they do to the claimed
    signature and identity (a change of form keeps both: ``either``)."""
    auth = wire.authorization
    signature = re.search(SIGNATURE[wire.scheme], auth).group(2)
    digits = "0123456789abcdef" if wire.scheme != "oss1" else BASE64_DIGITS
    op = data.draw(st.sampled_from(["signature", "flip", "truncate", "credential", "other key", "replace", "insert",
                                    "case", "spaces", "signed headers"]), label="auth op")
    label = "forged"
    head = auth[: len(auth) - len(signature)]
    if op == "signature":
        new = data.draw(st.one_of(st.text(digits, max_size=len(signature) + 2), unicode_text, huge), label="signature")
        auth = head + new
        if new.strip() == signature or (wire.scheme != "oss1" and new.strip().lower() == signature):
            label = "either"
    elif op == "flip":  # one character of the signature changed (never its base64 padding)
        i = data.draw(st.integers(0, len(signature.rstrip("=")) - 1), label="at")
        char = data.draw(st.sampled_from([d for d in digits if d.lower() != signature[i].lower()]), label="to")
        auth = head + signature[:i] + char + signature[i + 1:]
    elif op == "truncate":  # at least one character of the signature proper is cut off
        padding = len(signature) - len(signature.rstrip("="))
        last = len(auth) - padding - 1
        auth = auth[: data.draw(st.one_of(st.integers(len(head), last), st.integers(0, last)), label="cut")]
    elif op == "credential":  # another AccessKey ID claimed; no separators, no whitespace around it
        new = data.draw(st.text(st.characters(exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp"),
                                              exclude_characters=",;:/="), max_size=30).filter(lambda k: k != AK),
                        label="access key")
        auth = re.sub(CREDENTIAL[wire.scheme], lambda m: m.group(1) + new, auth, count=1)
    elif op == "other key":  # another valid key claims the request
        auth = re.sub(CREDENTIAL[wire.scheme], lambda m: m.group(1) + OTHER_AK, auth, count=1)
    elif op == "replace":
        random_bytes = st.binary(max_size=80).map(lambda b: b.decode("latin-1"))
        auth = data.draw(st.one_of(latin1, unicode_text, huge, random_bytes,
                                   st.sampled_from(["ACS3-HMAC-SHA256", "OSS4-HMAC-SHA256", "OSS ", "OSS :",
                                                    "ACS3-HMAC-SHA256 Credential=,SignedHeaders=,Signature=",
                                                    f"OSS4-HMAC-SHA256 Credential={AK}/20261101/cn-hangzhou/oss/"
                                                    "aliyun_v4_request, Signature=",
                                                    f"OSS {AK}:", f"OSS {AK}:="])), label="authorization")
    elif op == "insert":  # one character put into the signature; at either end it may be a separator
        i = data.draw(st.integers(0, len(signature)), label="at")
        char = data.draw(st.characters(exclude_categories=("Cs",)), label="char")
        auth = head + signature[:i] + char + signature[i:]
        label = "either" if i in (0, len(signature)) else "forged"
    elif op == "case":  # hex is case-free; base64 is not
        auth = head + signature.upper()
        label = "either" if wire.scheme != "oss1" else "forged"
    elif op == "spaces":
        spaces = data.draw(st.sampled_from([" ", "  ", "\t"]), label="space")
        auth = re.sub(r"([,:])", lambda m: m.group(1) + spaces, auth)
        label = "either"
    elif wire.scheme == "acs3":  # the list of what was signed, claimed differently
        names = acs3_signed_names(wire)
        claimed = data.draw(st.one_of(st.permutations(names), st.lists(st.sampled_from(names), max_size=len(names))),
                            label="signed headers")
        auth = auth.replace("SignedHeaders=" + ";".join(names), "SignedHeaders=" + ";".join(claimed))
    elif wire.scheme == "oss4":
        extra = data.draw(st.sampled_from(["host", "user-agent", "date"]), label="additional")
        auth = auth.replace(", Signature=", f", AdditionalHeaders={extra}, Signature=")
    else:
        auth = auth.replace("OSS ", "OSS2 ", 1)
    changed = _with_headers(wire, [(n, auth if n == "authorization" else v) for n, v in wire.headers])
    if auth == wire.authorization:
        label = "same"
    return Mutation(changed, label, f"authorization {op}")


MUTATIONS: dict[str, Callable] = {"header": mutate_header, "query": mutate_query, "body": mutate_body,
                                  "method": mutate_method, "path": mutate_path, "authorization": mutate_authorization}


def one_mutation(data, wires: list[Wire]) -> tuple[Wire, Mutation]:
    original = data.draw(st.sampled_from(wires), label="genuine request")
    kinds = [k for k in MUTATIONS if k != "body" or original.scheme == "acs3"]  # OSS bodies are unsigned
    mutation = MUTATIONS[data.draw(st.sampled_from(kinds), label="kind")](data, original)
    return original, mutation


def check_verdict(mutation: Mutation, accepted_as: str | None) -> None:
    if mutation.label == "forged":
        assert accepted_as is None, f"forgery accepted: {mutation.what}\n{mutation.wire}"
    elif mutation.label == "same":
        assert accepted_as == AK, f"unsigned change refused: {mutation.what}\n{mutation.wire}"
    else:
        assert accepted_as in (None, AK), f"accepted as {accepted_as}: {mutation.what}"


@pytest.mark.parametrize("scheme", ["acs3", "oss4", "oss1"])
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_verifier_refuses_every_forgery_and_never_crashes(genuine, scheme, data):
    """One change to a genuine request: the verifier answers with acceptance or its own
    refusal (nothing else escapes it), refuses every change to what was signed, and
    accepts changes to what was not, as the key that signed."""
    _, mutation = one_mutation(data, genuine[scheme])
    check_verdict(mutation, verify(mutation.wire))


# ---- through HTTP ----------------------------------------------------------------------------------

http_safe_values = st.text(st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\x7f"),
                           max_size=30)
# Headers whose meaning goes beyond the signature (framing, conditions, ranges): not fuzzed over HTTP.
NOT_OVER_HTTP = TRANSPORT | {"authorization", "host", "range", "expect", "te", "upgrade", "trailer", "if-match",
                             "if-none-match", "if-modified-since", "if-unmodified-since"}


def fresh_acs3(endpoint: str) -> Wire:
    """A ListRepository request signed now by the SDK's own signer (each nonce is used once)."""
    query = {"InstanceId": INSTANCE, "PageNo": "1", "PageSize": "30", "RepoStatus": "ALL"}
    headers = {"host": endpoint, "x-acs-version": "2018-12-01", "x-acs-action": "ListRepository",
               "x-acs-date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "x-acs-signature-nonce": uuid.uuid4().hex, "accept": "application/json",
               "x-acs-content-sha256": hashlib.sha256(b"").hexdigest(), "user-agent": "fuzz"}
    from alibabacloud_tea_openapi.utils import Utils

    request = SimpleNamespace(pathname="/", method="POST", query=dict(query), headers=dict(headers))
    headers["authorization"] = Utils.get_authorization(request, "ACS3-HMAC-SHA256",
                                                       hashlib.sha256(b"").hexdigest(), AK, SECRET)
    return Wire("POST", "/", tuple(query.items()), tuple(headers.items()), b"", "acs3")


def http_mutation(data, wire: Wire) -> Mutation:
    """A change HTTP can carry (visible Latin-1 header values). Query parameters only for
    ACR, where all are signed: an unsigned OSS parameter changes the answer, not the
    signature's verdict."""
    kinds = ["header", "authorization", "method"] + (["query"] if wire.scheme == "acs3" else [])
    kind = data.draw(st.sampled_from(kinds), label="kind")
    if kind == "header":
        name = data.draw(header_names.filter(lambda n: n not in NOT_OVER_HTTP), label="name")
        value = data.draw(http_safe_values, label="value")
        kept = [(n, v) for n, v in wire.headers if n != name]
        changed = _with_headers(wire, kept + [(name, value)])
        return Mutation(changed, label_of(changed, wire), f"header {name}")
    if kind == "authorization":
        signature = re.search(SIGNATURE[wire.scheme], wire.authorization).group(2)
        new = data.draw(http_safe_values.filter(lambda s: s.lower() != signature.lower()), label="signature")
        auth = wire.authorization[: len(wire.authorization) - len(signature)] + new
        return Mutation(_with_headers(wire, [(n, auth if n == "authorization" else v) for n, v in wire.headers]),
                        "forged", "signature")
    if kind == "method":
        method = data.draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"]).filter(lambda m: m != wire.method),
                           label="method")
        changed = replace(wire, method=method)
        return Mutation(changed, label_of(changed, wire), f"method {method}")
    return mutate_query(data, wire, values=unicode_text)  # a request line past 16 KiB is cut off by h11


def answer(endpoint: str, wire: Wire) -> tuple[int, bytes]:
    status, _, body = send_raw(endpoint, wire.method, encoded_target(wire), wire.headers, wire.body)
    return status, body


@pytest.mark.parametrize("scheme", ["acs3", "oss4", "oss1"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_emulator_over_http_never_5xx_and_never_serves_a_forgery(loaded_emulator, genuine, scheme, data):
    """The same over a socket: the emulator answers every changed request below 500, never
    2xx for a forgery, and 2xx when only unsigned parts changed."""
    emulator = loaded_emulator
    if scheme == "acs3":
        endpoint, original = emulator.acr_endpoint, fresh_acs3(emulator.acr_endpoint)
    else:
        endpoint = emulator.oss_endpoint
        original = data.draw(st.sampled_from([w for w in genuine[scheme] if w.method == "GET"]), label="request")
    mutation = http_mutation(data, original)
    status, body = answer(endpoint, mutation.wire)
    assert status < 500, (status, body[:300], mutation.what)
    if mutation.label == "forged":
        assert not 200 <= status < 300, f"forgery served ({status}): {mutation.what}\n{mutation.wire}"
    elif mutation.label == "same":
        assert 200 <= status < 300, (status, body[:300], mutation.what)
