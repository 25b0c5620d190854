"""build_report / finalize_savings / acr-gc report over a ledger filled here (SQLite in tmp).

The run is the hand-worked one of test_reports_figures (before 10 GiB, after 6.5 GiB at
window_end, 3.5 GiB = 3758096384 bytes reclaimed, 35 %, 0.42 CNY per month at 0.12).
"""

from __future__ import annotations

import hashlib
import csv
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from acr_gc.cli import app
from acr_gc.ledger import Ledger, Run, Sample
from acr_gc.ledger.runs import close_window
from acr_gc.ledger.runs import latest_finished_run_id as latest_run_id
from acr_gc.reports import artifacts
from acr_gc.reports.build import ReportError, build_report, finalize_savings
from acr_gc.reports.summary import Summary

GIB = 1073741824
T0 = datetime(2024, 6, 10, tzinfo=timezone.utc)
END = T0 + timedelta(days=5)
PLAN = {"tags_total": 100, "tags_expired": 40, "tags_unregenerable": 0, "bytes_expected": 4 * GIB,
        "bytes_expected_is_upper_bound": True, "bytes_unreferenced_before": None}
GC = {"driver": "emulator", "task_id": "gc-1", "state": "SUCCESS", "tags_deleted": 40}
CHECKS = {"unexpected_deletions": 0, "missed_deletions": 0, "freeze_restored": True}
HOSTILE_NS = "<script>alert('ns')</script>"
FORMULA_NS = '=HYPERLINK("http://evil.example","x")'
NAMESPACES = [
    {"namespace": "team-a", "tags": 50, "expired": 25, "unregenerable": 0, "expected_bytes": 3 * GIB},
    {"namespace": HOSTILE_NS, "tags": 30, "expired": 10, "unregenerable": 0, "expected_bytes": GIB // 2},
    {"namespace": FORMULA_NS, "tags": 20, "expired": 5, "unregenerable": 0, "expected_bytes": GIB // 2},
]
SAMPLES = [  # (offset, GiB, phase)
    (-timedelta(hours=1), 10.00, "before"),
    (timedelta(hours=3), 9.50, "after"),
    (timedelta(days=1), 8.00, "after"),
    (timedelta(days=2), 7.00, "after"),
    (timedelta(days=3), 7.25, "after"),
    (timedelta(days=4), 6.75, "after"),
    (timedelta(days=5), 6.50, "after"),
]


def add_run(ledger: Ledger, out_dir: Path, run_id: str = "20240610T000000Z-aaaaaa", *, instance="cri-demo",
            state="GC_DONE", samples=SAMPLES, namespaces=NAMESPACES, message=None, started=T0) -> str:
    with ledger.session() as session:
        session.add(Run(
            run_id=run_id, instance_id=instance, bucket="cri-demo-storage", region="cn-hangzhou", state=state,
            message=message, started_at=started, finished_at=started + timedelta(hours=3), out_dir=str(out_dir),
            plan_json=json.dumps(PLAN), gc_json=json.dumps(GC), checks_json=json.dumps(CHECKS),
            namespaces_json=json.dumps(namespaces), charts=2, gc_started_at=T0,
            gc_finished_at=T0 + timedelta(hours=2), window_end=END, price_per_gb_month=0.12, currency="CNY",
        ))
        session.flush()
        for i, (offset, gib, phase) in enumerate(samples):
            session.add(Sample(run_id=run_id, bucket="cri-demo-storage", taken_at=T0 + offset,
                               storage_bytes=int(gib * GIB), object_count=1000 + i, phase=phase))
    return run_id


@pytest.fixture
def ledger(tmp_path):
    led = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield led
    led.dispose()


def read_csv_rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_build_report_writes_every_file_consistent_with_the_figures(ledger, tmp_path):
    run_id = add_run(ledger, tmp_path / "out")
    assert close_window(ledger, run_id) == "COMPLETE"  # the ledger moves the state; the report shows it
    folder = build_report(ledger, run_id)
    assert folder == tmp_path / "out" / "cri-demo" / run_id
    for name in ("summary.json", "samples.csv", "storage.png", "report.md", "report.html"):
        assert (folder / name).stat().st_size > 0, name
    assert (folder / "storage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    summary = Summary.model_validate_json((folder / "summary.json").read_text())
    assert summary.state == "COMPLETE"
    # issue 11 added plan.tags_possible, plan.bytes_expected_max and checks.readings_consistent;
    # a plan recorded without them reads back with their defaults
    assert summary.plan.model_dump() == {**PLAN, "tags_possible": 0, "bytes_expected_max": None}
    assert summary.gc.model_dump() == GC
    assert summary.checks.model_dump() == {**CHECKS, "readings_consistent": None}
    assert summary.storage.model_dump() == {
        "before_bytes": 10737418240, "after_bytes": 6979321856, "reclaimed_bytes": 3758096384,
        "reclaimed_pct": 35.0, "samples": 7, "window_end": "2024-06-15T00:00:00Z", "window_complete": True,
    }
    assert summary.cost.model_dump() == {"currency": "CNY", "price_per_gb_month": 0.12, "saving_per_month": 0.42}
    with ledger.session() as session:
        assert session.get(Run, run_id).state == "COMPLETE"

    html = (folder / "report.html").read_text()
    assert "Reclaimed 3.50 GiB (35.00%) — saving 0.42 CNY per month" in html
    assert "0.25 GiB" in html and "pushed" in html  # the growth is explained
    assert "2 chart repositories" in html and "upper bound" in html
    assert "87.50%" in html  # measured 3.5 of expected at most 4 GiB
    md = (folder / "report.md").read_text()
    assert md.startswith("# Reclaimed 3.50 GiB (35.00%) — saving 0.42 CNY per month")


def _row(path: Path, run_id: str) -> dict:
    """The run's row as stored, every column, read with plain sqlite3."""
    import sqlite3

    with sqlite3.connect(path) as connection:
        connection.row_factory = sqlite3.Row
        return dict(connection.execute("select * from runs where run_id = ?", (run_id,)).fetchone())


@pytest.mark.parametrize("samples", [SAMPLES, SAMPLES[:5]], ids=["window-closed", "window-open"])
def test_building_a_report_never_changes_the_run_row(ledger, tmp_path, samples):
    """Report building reads and renders (issue 14 item 1): a GC_DONE run whose window has
    closed stays GC_DONE in the ledger and in summary.json until ``close_window`` moves it."""
    run_id = add_run(ledger, tmp_path / "out", samples=samples)
    before = _row(tmp_path / "ledger.db", run_id)
    folder = build_report(ledger, run_id)
    build_report(ledger, run_id, now=END + timedelta(days=1), publish=False)
    assert _row(tmp_path / "ledger.db", run_id) == before
    assert before["state"] == "GC_DONE"
    assert json.loads((folder / "summary.json").read_text())["state"] == "GC_DONE"


def test_samples_csv_rows_equal_the_ledger_samples(ledger, tmp_path):
    run_id = add_run(ledger, tmp_path / "out")
    folder = build_report(ledger, run_id)
    with ledger.session() as session:
        expected = [
            {"time": s.taken_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "storage_bytes": str(s.storage_bytes),
             "object_count": str(s.object_count), "phase": s.phase}
            for s in session.scalars(select(Sample).where(Sample.run_id == run_id).order_by(Sample.taken_at))
        ]
    assert len(expected) == 7
    assert read_csv_rows(folder / "samples.csv") == expected


def test_savings_row_exactly_once_however_often_finalize_runs(ledger, tmp_path):
    out = tmp_path / "out"
    run_id = add_run(ledger, out)
    build_report(ledger, run_id)
    assert finalize_savings(ledger, run_id) is True
    for _ in range(4):
        assert finalize_savings(ledger, run_id) is False
        build_report(ledger, run_id)
    # the crash window: row appended, flag never committed -> the next pass adds no second row
    with ledger.session() as session:
        session.get(Run, run_id).savings_recorded = False
    assert finalize_savings(ledger, run_id) is True
    with ledger.session() as session:
        assert session.get(Run, run_id).savings_recorded is True
    rows = read_csv_rows(out / "savings.csv")
    assert rows == [{
        "month": "2024-06", "instance": "cri-demo", "bytes_before": "10737418240", "bytes_after": "6979321856",
        "bytes_reclaimed": "3758096384", "currency": "CNY", "saving_per_month": "0.42", "run_id": run_id,
        "forecast_bytes": "",  # the plan's figure is an upper bound: no forecast
    }]
    # a second run of the next month adds its own row under the same header
    second = add_run(ledger, out, "20240710T000000Z-bbbbbb", started=T0 + timedelta(days=30))
    assert finalize_savings(ledger, second) is True
    text = (out / "savings.csv").read_text()
    assert text.count("month,instance") == 1
    assert [r["run_id"] for r in read_csv_rows(out / "savings.csv")] == [run_id, second]


def test_open_window_stays_gc_done_and_adds_no_savings(ledger, tmp_path):
    out = tmp_path / "out"
    run_id = add_run(ledger, out, samples=SAMPLES[:5])  # sampled up to T0 + 3d
    assert close_window(ledger, run_id) == "GC_DONE"
    folder = build_report(ledger, run_id)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["state"] == "GC_DONE"
    assert summary["storage"]["window_complete"] is False
    assert summary["storage"]["after_bytes"] == int(7.25 * GIB)
    assert "Provisional" in (folder / "report.html").read_text()
    assert finalize_savings(ledger, run_id) is False
    assert not (out / "savings.csv").exists()
    with ledger.session() as session:
        assert session.get(Run, run_id).state == "GC_DONE"


def test_unknown_or_running_runs_are_refused(ledger, tmp_path):
    with pytest.raises(ReportError, match="no run"):
        build_report(ledger, "nope")
    run_id = add_run(ledger, tmp_path / "out", state="RUNNING")
    with pytest.raises(ReportError, match="RUNNING"):
        build_report(ledger, run_id)


def test_blocked_run_reports_no_result(ledger, tmp_path):
    run_id = add_run(ledger, tmp_path / "out", state="BLOCKED", samples=[], message="gate blocked: 3 tag(s)")
    folder = build_report(ledger, run_id)
    summary = Summary.model_validate_json((folder / "summary.json").read_text())
    assert summary.state == "BLOCKED" and summary.storage.before_bytes is None
    assert "No storage was reclaimed: the run ended BLOCKED" in (folder / "report.html").read_text()


def test_hostile_names_are_escaped_in_html_and_neutralised_in_csv(ledger, tmp_path):
    out = tmp_path / "out"
    instance = '=HYPERLINK("evil","x")'
    run_id = add_run(ledger, out, instance=instance, message="<img src=x onerror=alert(1)>")
    folder = build_report(ledger, run_id)
    html = (folder / "report.html").read_text()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#39;ns&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script" not in html.lower()  # no script at all in the report
    md = (folder / "report.md").read_text()
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert finalize_savings(ledger, run_id) is True
    row = read_csv_rows(out / "savings.csv")[0]
    assert row["instance"] == "'" + instance  # a spreadsheet shows it as text, never runs it
    table = artifacts.namespace_table(_report_input(ledger, run_id))
    assert {r["namespace"] for r in table} >= {HOSTILE_NS, FORMULA_NS}


def _report_input(ledger, run_id):
    from acr_gc.reports.build import _namespaces
    from acr_gc.reports.render import ReportInput
    from acr_gc.rules.figures import storage_figures

    with ledger.session() as session:
        run = session.get(Run, run_id)
    f = storage_figures(None, gc_started_at=None, gc_finished_at=None, window_end=None, now=None,
                        price_per_gb_month=0.12, currency="CNY")
    return ReportInput(run_id=run_id, instance_id=run.instance_id, bucket=run.bucket, state=run.state,
                       figures=f, namespaces=_namespaces(run))


def test_artifacts_have_stable_keys_per_instance(ledger, tmp_path, monkeypatch):
    import prefect.artifacts as pa

    calls = []
    for name in ("create_markdown_artifact", "create_table_artifact", "create_link_artifact", "create_image_artifact"):
        monkeypatch.setattr(pa, name, lambda *a, _n=name, **k: calls.append((_n, k)))
    monkeypatch.setattr(artifacts, "in_prefect_run", lambda: True)
    run_id = add_run(ledger, tmp_path / "out", instance="CRI_Demo.1")
    folder = build_report(ledger, run_id)
    by_name = {name: kw for name, kw in calls}
    # an id changed to fit a key carries a hash of the original (issue 14: one artifact_key)
    slug = "cri-demo-1-" + hashlib.sha256(b"CRI_Demo.1").hexdigest()[:8]
    assert {kw["key"] for kw in by_name.values()} == {
        f"acr-gc-report-{slug}", f"acr-gc-namespaces-{slug}", f"acr-gc-report-link-{slug}",
        f"acr-gc-storage-chart-{slug}",
    }
    assert by_name["create_markdown_artifact"]["markdown"].startswith("# Reclaimed 3.50 GiB")
    assert "data:image/png;base64," in by_name["create_markdown_artifact"]["markdown"]
    assert by_name["create_link_artifact"]["link"] == (folder / "report.html").resolve().as_uri()
    assert by_name["create_image_artifact"]["image_url"].startswith("data:image/png;base64,iVBOR")
    assert len(by_name["create_table_artifact"]["table"]) == 3
    # outside a Prefect run nothing is published
    calls.clear()
    monkeypatch.setattr(artifacts, "in_prefect_run", lambda: False)
    build_report(ledger, run_id)
    assert calls == []


# ---- acr-gc report --------------------------------------------------------------------

def write_config(tmp_path: Path, ledger_path: Path, instance="cri-demo") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"target:\n  instance_id: {instance}\n  bucket: cri-demo-storage\n"
        "freeze:\n  principals: [ci]\n"
        f"ledger:\n  url: sqlite:///{ledger_path}\n"
        f"report:\n  out_dir: {tmp_path / 'out'}\n",
        encoding="utf-8",
    )
    return path


def test_cli_report_renders_the_latest_run(ledger, tmp_path):
    out = tmp_path / "out"
    older = add_run(ledger, out, "20240510T000000Z-000000", started=T0 - timedelta(days=31))
    latest = add_run(ledger, out, started=T0)
    add_run(ledger, out, "20240620T000000Z-cccccc", state="RUNNING", started=T0 + timedelta(days=10))
    add_run(ledger, out, "20240621T000000Z-dddddd", instance="other", started=T0 + timedelta(days=11))
    assert latest_run_id(ledger, "cri-demo") == latest
    config = write_config(tmp_path, tmp_path / "ledger.db")
    result = CliRunner().invoke(app, ["report", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == str(out / "cri-demo" / latest)
    assert "saving 0.42 CNY per month" in result.stdout
    assert (out / "cri-demo" / latest / "report.html").exists()
    assert not (out / "cri-demo" / older).exists()
    assert [r["run_id"] for r in read_csv_rows(out / "savings.csv")] == [latest]

    result = CliRunner().invoke(app, ["report", "--config", str(config), "--run", older])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == str(out / "cri-demo" / older)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--run", "no-such-run"], "no run 'no-such-run'"),
        (["--run", "20240621T000000Z-dddddd"], "belongs to instance other"),
        (["--run", "20240620T000000Z-cccccc"], "has not finished"),
    ],
)
def test_cli_report_bad_run_exits_2_with_one_line(ledger, tmp_path, args, message):
    add_run(ledger, tmp_path / "out", "20240620T000000Z-cccccc", state="RUNNING")
    add_run(ledger, tmp_path / "out", "20240621T000000Z-dddddd", instance="other")
    config = write_config(tmp_path, tmp_path / "ledger.db")
    result = CliRunner().invoke(app, ["report", "--config", str(config), *args])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert result.stdout == ""


def test_cli_report_bad_config_or_empty_ledger_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("target:\n  instance_id: x\n  bucket: y\n  nonsense: 1\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["report", "--config", str(bad)])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    config = write_config(tmp_path, tmp_path / "empty.db")
    result = CliRunner().invoke(app, ["report", "--config", str(config)])
    assert result.exit_code == 2 and "no finished run of instance cri-demo" in result.stderr


def test_frame_sanity_for_pandas_dtypes(ledger, tmp_path):
    """The ledger's samples come back as aware UTC times and integer bytes."""
    from acr_gc.ledger.samples import samples_frame

    run_id = add_run(ledger, tmp_path / "out")
    frame = samples_frame(ledger, run_id)
    assert str(frame["taken_at"].dt.tz) == "UTC"
    assert pd.api.types.is_integer_dtype(frame["storage_bytes"])
