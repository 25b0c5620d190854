"""Credentials never appear in logs, artifacts, reports, ledger rows or exception texts.

The dataset's key pair carries distinctive canaries: the AccessKey secret
``SECRET-canary+7f3a/91c2e4`` (its ``+`` and ``/`` make the URL-encoded and JSON-escaped
forms differ from the raw one) and the AccessKey ID ``LTAIcanaryKey0001``. Alibaba treats
the secret as the secret; the ID travels in every signed request, so it is looked for in
what a run publishes (report files, artifacts, ledger rows), not in debug logs.

Three real ``acr-gc run`` processes (credentials in ``ALIBABA_CLOUD_*`` env vars, every
logger at DEBUG and the ``acr_gc`` loggers shipped to the Prefect API) against a real
emulator and the session's Prefect server: (a) a full run to COMPLETE, (b) the WRONG
secret (another canary) so that authentication fails, (c) a run under fault injection
(fault rate 0.2) so that retries are logged. Then everything they left is scanned for the
secret in raw, URL-encoded, JSON-escaped, hex and base64 form (at every alignment): the
process output, every Prefect log line, artifact, flow run and task run of those runs as
read back from the API, every byte under the run's working folder (report files, PNG
included, and the ledger file), every column of every row of every ledger table, the
private Prefect home of the run. Positive controls prove each scanned place is not empty
and that the scanner finds a planted canary.
"""

from __future__ import annotations

import base64
import pickle
import sys
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from sqlalchemy import MetaData, create_engine, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
import crash_support as cs  # noqa: E402
import pipeline_support as ps  # noqa: E402

from emulator_kit import new_emulator  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

AK = "LTAIcanaryKey0001"
SECRET = "SECRET-canary+7f3a/91c2e4"
WRONG_SECRET = "WRONG-canary+0b5d/e8a613"
TOKEN = "STS-canary+c0ffee/5e1f00d"
DAY_SECONDS = 0.2  # one emulated day: the release window (3 + 2 days) closes in about a second


# ---- the scanner ---------------------------------------------------------------------------


def encoded_forms(secret: str) -> dict[str, bytes]:
    """Every form in which ``secret`` could be written out, by name.

    Base64 of a longer text holds the secret at one of three alignments; for each, the
    quads that depend only on the secret's own bytes are what any such text contains.
    """
    raw = secret.encode()
    forms = {
        "raw": raw,
        "url-encoded": quote(secret, safe="").encode(),
        "form-encoded": quote_plus(secret).encode(),
        "json-escaped": secret.replace("/", "\\/").encode(),
        "hex": raw.hex().encode(),
        "tail": raw[-11:],  # what is left when a message cuts the secret short
    }
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        core = encoded[4 if shift else 0: -4]
        forms[f"base64@{shift}"] = core
        forms[f"base64url@{shift}"] = core.replace(b"+", b"-").replace(b"/", b"_")
    return forms


def hits(secret: str, places: dict[str, bytes | str]) -> list[str]:
    """``place: form`` for every place that holds ``secret`` in any form."""
    forms = encoded_forms(secret)
    found = []
    for place, content in places.items():
        data = content.encode("utf-8", "backslashreplace") if isinstance(content, str) else content
        found += [f"{place}: {name}" for name, needle in forms.items() if needle in data]
    return found


def test_scanner_finds_planted_canaries():
    """The scanner is not blind: every encoding of the secret, planted in noise, is found."""
    planted = {
        "raw": f"x{SECRET}y",
        "url": "a=" + quote(SECRET, safe=""),
        "json": '{"k": "%s"}' % SECRET.replace("/", "\\/"),  # as encoders that escape "/" write it
        "base64-0": base64.b64encode(SECRET.encode() + b"tail"),
        "base64-1": base64.b64encode(b"h" + SECRET.encode() + b"tail"),
        "base64-2": base64.urlsafe_b64encode(b"he" + SECRET.encode()),
        "cut": "…" + SECRET[-11:],
    }
    assert {hit.split(":")[0] for hit in hits(SECRET, planted)} == set(planted)
    assert hits(SECRET, {"wrong": WRONG_SECRET, "id": AK}) == []


# ---- what one run left behind --------------------------------------------------------------


def prefect_records(flow_run_ids: list[str]) -> dict[str, str]:
    """Every log line, artifact, flow run and task run of the flow runs, read back from the API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )

    def paged(read, **filters):
        out, offset = [], 0
        while True:
            page = read(**filters, limit=200, offset=offset)
            out += page
            if len(page) < 200:
                return out
            offset += 200

    ids = [uuid.UUID(i) for i in flow_run_ids]
    with get_client(sync_client=True) as client:
        runs_filter = FlowRunFilter(id=FlowRunFilterId(any_=ids))
        logs = paged(client.read_logs, log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
        artifacts = paged(client.read_artifacts,
                          artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids)))
        flow_runs = client.read_flow_runs(flow_run_filter=runs_filter)
        task_runs = paged(client.read_task_runs, flow_run_filter=runs_filter)
    return {
        "prefect logs": "\n".join(f"{log.level} {log.name} {log.message}" for log in logs),
        "prefect artifacts": "\n".join(a.model_dump_json() for a in artifacts),
        "prefect flow runs": "\n".join(r.model_dump_json() for r in flow_runs),
        "prefect task runs": "\n".join(t.model_dump_json() for t in task_runs),
    }


def ledger_rows(url: str) -> list[dict]:
    """Every row of every table in the ledger, reflected (no model knowledge needed)."""
    engine = create_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            return [{"table": table.name, **dict(row._mapping)}
                    for table in metadata.sorted_tables for row in connection.execute(select(table))]
    finally:
        engine.dispose()


def files_under(*folders: Path) -> dict[str, bytes]:
    return {str(path): path.read_bytes() for folder in folders for path in sorted(folder.rglob("*"))
            if path.is_file()}


def flow_run_ids(rows: list[dict]) -> list[str]:
    return [row["flow_run_id"] for row in rows if row["table"] == "runs" and row["flow_run_id"]]


# ---- fixtures: one emulator, one CLI run per variant -----------------------------------------


def canary_dataset() -> dict:
    """crash_support's hand-worked instance (40 expired, all regenerable) with the canary key."""
    data = cs.dataset(cs.ORIGINAL_POLICY)
    data["credentials"] = [{"access_key_id": AK, "access_key_secret": SECRET, "principal": "ops"}]
    return data


@pytest.fixture(scope="module")
def emulator():
    with new_emulator(canary_dataset(), day_seconds=DAY_SECONDS) as emu:
        yield emu


@pytest.fixture(scope="module")
def faulty_emulator():
    """20 % of requests answered 5xx or dropped (seeded): the run retries, and says so."""
    with new_emulator(canary_dataset(), day_seconds=DAY_SECONDS, fault_rate=0.2, seed=7) as emu:
        yield emu


def write_config(emu, workdir: Path) -> Path:
    path = cs.write_config(workdir / "config.yaml", emu, workdir, poll_interval="PT0.2S")
    config = cs.config_dict(path)
    config["sampling"].update(mode="inline", day_length=DAY_SECONDS)
    return ps.write_config(config, path)


def debug_env(prefect_api_url: str, prefect_home: Path, secret: str) -> dict[str, str]:
    """The run's environment: the canary key, every logger at DEBUG, acr_gc logs to the API."""
    env = ps.cli_env(prefect_api_url, AK, secret)
    env.update(PREFECT_HOME=str(prefect_home), PREFECT_LOGGING_LEVEL="DEBUG", PREFECT_LOGGING_ROOT_LEVEL="DEBUG",
               PREFECT_LOGGING_EXTRA_LOGGERS="acr_gc")
    return env


class Leftovers:
    """One ``acr-gc run``: its output and every place it could have written to."""

    def __init__(self, emu, workdir: Path, prefect_api_url: str, secret: str):
        self.workdir = workdir
        workdir.mkdir()
        self.home = workdir / "prefect-home"
        self.home.mkdir()
        config = write_config(emu, workdir)
        self.ledger_url = cs.config_dict(config)["ledger"]["url"]
        self.result = ps.run_cli(["run", "--config", str(config)], debug_env(prefect_api_url, self.home, secret),
                                 timeout=180)
        self.output = self.result.stdout + self.result.stderr
        self.rows = ledger_rows(self.ledger_url) if (workdir / "ledger.db").exists() else []
        self.prefect = prefect_records(flow_run_ids(self.rows)) if flow_run_ids(self.rows) else {}

    def places(self) -> dict[str, bytes | str]:
        return {"cli output": self.output, **self.prefect, **files_under(self.workdir),
                **{f"ledger {row['table']} row {i}": repr(row) for i, row in enumerate(self.rows)}}

    def explain(self) -> str:
        return f"exit {self.result.returncode}\n{self.output[-4000:]}"


@pytest.fixture(scope="module")
def runs(emulator, faulty_emulator, prefect_api_url, tmp_path_factory) -> dict[str, Leftovers]:
    """The three runs, side by side (each its own working folder; the wrong secret is
    refused before it could touch the instance the full run reclaims)."""
    root = tmp_path_factory.mktemp("secrets")
    variants = {"full": (emulator, SECRET), "wrong": (emulator, WRONG_SECRET), "faulty": (faulty_emulator, SECRET)}
    with ThreadPoolExecutor(max_workers=len(variants)) as pool:
        started = {name: pool.submit(Leftovers, emu, root / name, prefect_api_url, secret)
                   for name, (emu, secret) in variants.items()}
        return {name: future.result() for name, future in started.items()}


# ---- the runs ----------------------------------------------------------------------------------


def test_full_run_leaves_no_secret_anywhere(runs):
    """A run to COMPLETE at DEBUG: no form of the secret in its output, Prefect logs,
    artifacts, flow/task runs, report files (PNG bytes too), ledger file and rows, Prefect
    home; the AccessKey ID is in none of the report files, artifacts or ledger rows."""
    run = runs["full"]
    assert run.result.returncode == 0, run.explain()
    summary = cs.read_summary(run.workdir, run.result.stdout)
    assert summary["state"] == "COMPLETE", run.explain()
    report_files = files_under(run.workdir / "out")
    assert {Path(p).name for p in report_files} >= {"summary.json", "plan.csv", "deleted_tags.csv", "samples.csv",
                                                    "report.html", "report.md", "storage.png", "savings.csv"}
    assert run.prefect["prefect logs"] and run.prefect["prefect artifacts"], "nothing read back from Prefect"
    assert any(row["table"] == "freezes" for row in run.rows) and any(row["table"] == "samples" for row in run.rows)
    assert " DEBUG " in run.output or "DEBUG" in run.prefect["prefect logs"], "DEBUG logging was not on"

    assert hits(SECRET, run.places()) == []
    published = {**report_files, "prefect artifacts": run.prefect["prefect artifacts"],
                 **{f"ledger row {i}": repr(row) for i, row in enumerate(run.rows)}}
    assert hits(AK, published) == []


def test_wrong_secret_run_names_the_refusal_but_no_secret(runs):
    """The wrong secret is refused before anything runs (exit 2, one line saying the
    credentials were rejected); neither it nor the right one is in anything it left."""
    run = runs["wrong"]
    assert run.result.returncode == 2, run.explain()
    last = run.result.stderr.strip().splitlines()[-1]
    assert last.startswith("acr-gc: credentials rejected"), run.explain()
    assert hits(WRONG_SECRET, run.places()) == [] and hits(SECRET, run.places()) == []


def test_faulty_run_logs_retries_but_no_secret(runs):
    """Under 20 % injected 5xx and dropped connections the retries are logged (to the
    console and to the Prefect API); no form of the secret is in any of it."""
    run = runs["faulty"]
    assert "retrying" in run.output, run.explain()
    assert "retrying" in run.prefect.get("prefect logs", ""), "acr_gc debug logs did not reach the Prefect API"
    assert hits(SECRET, run.places()) == []
    assert hits(AK, files_under(run.workdir / "out")) == []


# ---- exception texts and the credentials objects, in this process ------------------------------


def every_text_of(exc: BaseException) -> str:
    """str, repr, args, the formatted traceback and the pickle of an exception and of
    every exception chained to it (suppressed contexts included)."""
    texts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        texts += [str(exc), repr(exc), repr(exc.args), "".join(traceback.format_exception(exc))]
        try:
            texts.append(pickle.dumps(exc).decode("latin-1"))
        except Exception as unpicklable:  # noqa: BLE001 - an SDK exception that cannot be pickled
            texts.append(repr(unpicklable))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(texts)


def test_refused_calls_raise_texts_without_the_secret(emulator, tmp_path, monkeypatch):
    """ACR and OSS refusing the wrong secret, and preflight turning that into one line: no
    exception in any chain, in any text form (pickled too), holds either secret."""
    from acr_gc.cloud import credentials
    from acr_gc.cloud.clients import CloudClients, acr_client, oss_client
    from acr_gc.cloud.errors import AuthError
    from acr_gc.config import Config
    from acr_gc.tasks.preflight import BadInput, preflight

    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", AK)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", WRONG_SECRET)
    credentials.reset_chain()
    config = Config.model_validate(cs.config_dict(write_config(emulator, tmp_path)))
    texts = {}
    for name, call in (("acr", lambda: acr_client(config).get_instance()),
                       ("oss", lambda: oss_client(config).bucket_info())):
        with pytest.raises(AuthError) as refused:
            call()
        texts[name] = every_text_of(refused.value)
    with pytest.raises(BadInput) as blocked:
        preflight(config, CloudClients.from_config(config))
    texts["preflight"] = every_text_of(blocked.value)
    credentials.reset_chain()

    assert "credentials rejected" in texts["preflight"]
    assert hits(WRONG_SECRET, texts) == [] and hits(SECRET, texts) == []


def test_credentials_objects_never_show_the_secret(prefect_api_url):
    """The Block, the resolved credentials and their client: repr, str, JSON dumps and the
    block document read back from the Prefect API show no secret nor token."""
    from prefect.client.orchestration import get_client

    from acr_gc.cloud.credentials import AlibabaCloudCredentials, from_block

    block = AlibabaCloudCredentials(access_key_id=AK, access_key_secret=SECRET, security_token=TOKEN)
    resolved = from_block(block, "block:canary")
    block.save("secrets-canary", overwrite=True, _sync=True)
    with get_client(sync_client=True) as client:
        document = client.read_block_document_by_name("secrets-canary", "alibaba-cloud-credentials",
                                                   include_secrets=False)
    shown = {
        "block repr": repr(block), "block str": str(block), "block json": block.model_dump_json(),
        "block dump": repr(block.model_dump()), "resolved": repr(resolved) + str(resolved),
        "credential client": repr(resolved.credential) + str(resolved.credential),
        "block document": document.model_dump_json(),
    }
    assert resolved.credential.get_access_key_secret() == SECRET  # the secret is there to be used
    assert AK in shown["block json"]
    assert hits(SECRET, shown) == [] and hits(TOKEN, shown) == []
