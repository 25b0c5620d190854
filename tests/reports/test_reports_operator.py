"""The operator's words, worked out by hand (issue 15): the approval headline, a
notification's subject and body, and the plain progress lines without a terminal."""

import io
from pathlib import Path

from acr_gc.config import Config
from acr_gc.flows.approval import headline
from acr_gc.notify import message
from acr_gc.terminal import TerminalSeat

CONFIG = Config.model_validate({"target": {"instance_id": "cri-x", "bucket": "cri-x-storage"},
                                "freeze": {"principals": ["acs:ram::1:user/ci"]},
                                "report": {"price_per_gb_month": 0.12, "currency": "CNY"}})
PLAN = {"tags_total": 40, "tags_expired": 12, "tags_unregenerable": 3, "bytes_expected": 5 * 2**30,
        "bytes_expected_is_upper_bound": False}


def test_headline_has_the_plan_the_saving_and_where_the_plan_is():
    from prefect.settings import PREFECT_UI_URL, temporary_settings

    with temporary_settings(updates={PREFECT_UI_URL: "http://ui.example:4200/"}):
        text = headline(CONFIG, PLAN, Path("/runs/cri-x/r1"))
    assert text.splitlines() == [
        "Approve the plan for ACR instance cri-x (bucket cri-x-storage)?",
        "- tags to delete: 12 of 40",
        "- forecast: 5.0 GiB freed (5368709120 bytes), saving 0.60 CNY per month",  # 5 GiB x 0.12
        "- expired tags with no way back, allowed by policy.allow_unregenerable: 3",
        "- the plan: artifact acr-gc-plan-cri-x (http://ui.example:4200/artifacts/key/acr-gc-plan-cri-x) in Prefect, "
        "/runs/cri-x/r1/plan.csv on disk",
    ]
    bounded = headline(CONFIG, {**PLAN, "bytes_expected_is_upper_bound": True}, Path("/r"))
    assert "- forecast: at most 5.0 GiB freed (5368709120 bytes), saving at most 0.60 CNY per month" in bounded


def test_notification_carries_the_figures_and_the_report(tmp_path):
    (tmp_path / "report.html").write_text("<html/>", encoding="utf-8")
    summary = {"run_id": "r1", "instance_id": "cri-x", "bucket": "cri-x-storage", "plan": PLAN,
               "gc": {"task_id": "gc-9", "state": "SUCCESS", "tags_deleted": 12},
               "storage": {"reclaimed_bytes": 3 * 2**30, "reclaimed_pct": 25.0},
               "cost": {"saving_per_month": 0.36, "currency": "CNY"}}
    subject, body = message("COMPLETE", summary, tmp_path, "the report is final")
    assert subject == "acr-gc cri-x: COMPLETE"
    assert body.splitlines() == [
        "acr-gc run r1 on instance cri-x (bucket cri-x-storage): COMPLETE",
        "the report is final",
        "plan: 12 of 40 tags to delete, expected 5.0 GiB freed (5368709120 bytes)",
        "GC task gc-9: SUCCESS, 12 tags deleted",
        "reclaimed 3.0 GiB (3221225472 bytes, 25.0%)",
        "saving 0.36 CNY per month",
        f"report: {tmp_path / 'report.html'}",
    ]


def test_plain_progress_lines_without_a_terminal():
    out, log = io.StringIO(), io.StringIO()
    seat = TerminalSeat(out=out, log=log)
    bar = seat.progress("GC", total=4, unit="tags deleted")
    for done in (0, 1, 2, 3, 4):
        bar.update(done)
    bar.close()
    lines = log.getvalue().splitlines()
    assert lines[0] == "GC: 0/4 tags deleted (0%)"  # the first update is printed at once
    assert lines[-1] == "GC: 4/4 tags deleted (100%)"  # the end always is
    assert out.getvalue() == ""  # stdout is the result lines' alone


def test_no_terminal_and_no_approve_decides_no_at_once():
    decision = TerminalSeat(out=io.StringIO(), inp=io.StringIO("y\n")).decide("Approve?")
    assert (decision.approved, decision.via) == (False, "no-terminal")
    assert TerminalSeat(approve=True, out=io.StringIO()).decide("Approve?").approved is True
