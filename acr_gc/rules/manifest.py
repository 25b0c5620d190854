"""The operator's regeneration manifest and the policy's allow list (DESIGN section 4).

Both tell the gate that certain expired tags are acceptable to delete; both come from a
person, so every problem is reported as one line that names the file and line (or the
allow-list entry) and says what is wrong, and the CLI turns it into exit code 2.

Regeneration manifest (``policy.regeneration_manifest``): a UTF-8 CSV (a leading BOM is
accepted, as spreadsheets write one) whose header is exactly
``namespace,repo,tag_glob,source``, then one row per covered set of tags:

* namespace, repo -- literal names of the repository;
* tag_glob -- ``*`` (any run of characters, possibly empty) and ``?`` (one character)
  matched against the WHOLE tag; every other character is literal (``[`` included);
* source -- free text: how to regenerate those tags (a pipeline, a Dockerfile, ...).

Fields are stripped of surrounding spaces; none may be empty; names hold no spaces nor
control characters. Blank lines are skipped. A file over 64 MiB is refused unread.
:func:`load_manifest` returns a DataFrame with columns namespace, repo, tag_glob, source
(str) and line_no (int64, the line the row starts on), in file order.

Allow list (``policy.allow_unregenerable``): entries ``"namespace/repo:tag-glob"``; the
namespace is the text before the first ``/`` and the tag glob the text after the last
``:``; the repository (which may itself contain ``/``) is what lies between. Only the tag
part is a glob. :func:`parse_allow_list` returns columns namespace, repo, tag_glob, entry.
"""

from __future__ import annotations

import csv
import io
import os
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

import pandas as pd

MANIFEST_HEADER = ("namespace", "repo", "tag_glob", "source")
MAX_MANIFEST_BYTES = 64 * 2**20  # ~1.5 million rows: room for one row per tag of a big registry
MANIFEST_COLUMNS = (*MANIFEST_HEADER, "line_no")
ALLOW_COLUMNS = ("namespace", "repo", "tag_glob", "entry")


class ManifestError(ValueError):
    """The regeneration manifest cannot be used; the message names the file and line."""


class AllowListError(ValueError):
    """A ``policy.allow_unregenerable`` entry is malformed; the message names the entry."""


@lru_cache(maxsize=4096)
def compile_tag_glob(glob: str) -> re.Pattern[str]:
    """A manifest / allow-list tag glob as a whole-string regexp: ``*`` any run, ``?`` one char."""
    parts = []
    for char in glob:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


def tag_glob_matches(glob: str, tag: str) -> bool:
    """True when ``glob`` covers the whole ``tag``."""
    return compile_tag_glob(glob).fullmatch(tag) is not None


def _check_names(namespace: str, repo: str, tag_glob: str) -> str | None:
    """The first thing wrong with a (namespace, repo, tag_glob) triple, or None.

    Catches the usual slips of hand-written coordinates (``ns/repo`` typed in one
    column, a ``:tag`` left on the repo) rather than re-implementing ACR's name rules."""
    if "/" in namespace or ":" in namespace:
        return f"namespace {namespace!r} must not contain '/' or ':'"
    if ":" in repo:
        return f"repo {repo!r} must not contain ':'"
    if "/" in tag_glob or ":" in tag_glob:
        return f"tag_glob {tag_glob!r} must not contain '/' or ':'"
    for label, value in (("namespace", namespace), ("repo", repo), ("tag_glob", tag_glob)):
        if any(ch.isspace() for ch in value):
            return f"{label} {value!r} must not contain spaces"
        if any(unicodedata.category(ch) == "Cc" for ch in value):  # NUL: a binary or UTF-16 file
            return f"{label} {value!r} must not contain control characters"
    for label, value in (("namespace", namespace), ("repo", repo)):
        if "*" in value or "?" in value:
            return f"{label} {value!r} must be a literal name (only the tag may use * and ?)"
    return None


def load_manifest(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate the regeneration manifest CSV; raise :class:`ManifestError` on any problem."""
    where = f"regeneration manifest {os.fspath(path)}"
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_MANIFEST_BYTES + 1)  # bounded: /dev/zero is a file too
    except OSError as exc:
        raise ManifestError(f"{where}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{where}: larger than 64 MiB: not a regeneration manifest")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ManifestError(f"{where} line {line}: not valid UTF-8 (byte {exc.object[exc.start]:#04x})") from None

    if not text.strip():
        raise ManifestError(f"{where}: empty file; expected the header {','.join(MANIFEST_HEADER)}")

    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[str, str, str, str, int]] = []
    header_seen = False
    previous_end = 0
    while True:
        start_line = previous_end + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ManifestError(f"{where} line {reader.line_num}: malformed CSV: {exc}") from None
        previous_end = reader.line_num
        if not record or all(not field.strip() for field in record) and len(record) <= 1:
            continue  # blank line
        if not header_seen:
            header_seen = True
            if len(record) == 1 and tuple(field.strip() for field in record[0].split(";")) == MANIFEST_HEADER:
                raise ManifestError(f"{where} line {start_line}: fields are separated by ';', expected ','")
            if tuple(field.strip() for field in record) != MANIFEST_HEADER:
                raise ManifestError(
                    f"{where} line {start_line}: header must be exactly "
                    f"{','.join(MANIFEST_HEADER)}, found {','.join(record)}"
                )
            continue
        if len(record) != len(MANIFEST_HEADER):
            raise ManifestError(
                f"{where} line {start_line}: expected 4 fields ({','.join(MANIFEST_HEADER)}), found {len(record)}"
            )
        fields = [field.strip() for field in record]
        for name, value in zip(MANIFEST_HEADER, fields):
            if not value:
                raise ManifestError(f"{where} line {start_line}: empty {name}")
        problem = _check_names(*fields[:3])
        if problem:
            raise ManifestError(f"{where} line {start_line}: {problem}")
        rows.append((*fields, start_line))

    frame = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    return frame.astype({"line_no": "int64"})


def parse_allow_list(entries: Iterable[str] | None) -> pd.DataFrame:
    """Validate ``policy.allow_unregenerable`` entries into namespace, repo, tag_glob, entry."""
    rows: list[tuple[str, str, str, str]] = []
    for entry in entries or []:
        if not isinstance(entry, str):
            raise AllowListError(
                f"policy.allow_unregenerable entry {entry!r}: expected a string 'namespace/repo:tag-glob'"
            )
        where = f"policy.allow_unregenerable entry {entry!r}"
        namespace, slash, rest = entry.partition("/")
        repo, colon, tag_glob = rest.rpartition(":")
        if not slash or not colon:
            raise AllowListError(f"{where}: expected 'namespace/repo:tag-glob'")
        for name, value in (("namespace", namespace), ("repo", repo), ("tag glob", tag_glob)):
            if not value:
                raise AllowListError(f"{where}: empty {name} (expected 'namespace/repo:tag-glob')")
        problem = _check_names(namespace, repo, tag_glob)
        if problem:
            raise AllowListError(f"{where}: {problem}")
        rows.append((namespace, repo, tag_glob, entry))
    return pd.DataFrame(rows, columns=list(ALLOW_COLUMNS), dtype=object)
