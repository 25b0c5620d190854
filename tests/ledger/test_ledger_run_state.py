"""The run-state rules (issue 14 item 1): one enum, one table of allowed moves.

Pure: no ledger. Each rule has its own case, so a change to the table names the move it
broke.
"""

from __future__ import annotations

import json

import pytest

from acr_gc.ledger.states import (
    FINISHED,
    GC_ENDED,
    IllegalTransition,
    RunState,
    allowed,
    check_transition,
)

S = RunState


def test_values_are_the_stored_strings():
    """The ledger column and summary.json hold the plain names: an enum member is its value."""
    assert [s.value for s in RunState] == ["RUNNING", "PLANNED", "BLOCKED", "REJECTED", "FAILED", "CANCELED",
                                           "GC_DONE", "COMPLETE"]
    assert S.GC_DONE == "GC_DONE" and f"{S.GC_DONE}" == "GC_DONE" and str(S.COMPLETE) == "COMPLETE"
    assert json.dumps({"state": S.BLOCKED}) == '{"state": "BLOCKED"}'
    assert RunState("COMPLETE") is S.COMPLETE


@pytest.mark.parametrize("end", [S.BLOCKED, S.REJECTED, S.FAILED, S.CANCELED, S.GC_DONE])
def test_a_running_run_may_end_in_any_way(end):
    assert allowed(S.RUNNING, end)
    assert check_transition("RUNNING", end.value) is end


def test_gc_done_becomes_complete_when_its_window_closes():
    assert allowed(S.GC_DONE, S.COMPLETE)


def test_running_cannot_skip_to_complete():
    """COMPLETE needs the release window sampled: only a GC_DONE run gets there."""
    assert not allowed(S.RUNNING, S.COMPLETE)


@pytest.mark.parametrize("src", [S.GC_DONE, S.COMPLETE])
@pytest.mark.parametrize("dst", [S.FAILED, S.CANCELED])
def test_the_flow_that_ended_gc_may_still_fail_or_be_cancelled_while_reporting(src, dst):
    """The flow's error path records FAILED/CANCELED after GC_DONE (and COMPLETE, inline
    sampling) when its report or savings row fails or a cancel arrives: as before."""
    assert allowed(src, dst)


@pytest.mark.parametrize("src", [S.BLOCKED, S.REJECTED, S.FAILED, S.CANCELED, S.COMPLETE, S.GC_DONE, S.PLANNED])
def test_no_way_back_to_running(src):
    assert not allowed(src, S.RUNNING)
    with pytest.raises(IllegalTransition, match=f"{src.value} → RUNNING"):
        check_transition(src, S.RUNNING)


def test_complete_is_final_but_for_its_own_flow_failing():
    assert not allowed(S.COMPLETE, S.GC_DONE)
    assert not allowed(S.COMPLETE, S.BLOCKED)


@pytest.mark.parametrize("src", [S.BLOCKED, S.REJECTED, S.FAILED, S.CANCELED])
@pytest.mark.parametrize("dst", [S.GC_DONE, S.COMPLETE, S.BLOCKED, S.REJECTED, S.FAILED, S.CANCELED])
def test_an_ended_run_without_gc_never_moves(src, dst):
    """A run that stopped before GC (or failed) is over: only its own state again (a no-op)."""
    assert allowed(src, dst) is (src == dst)


def test_the_same_state_again_is_no_move():
    """Recording a run's end twice (e.g. BLOCKED created then finished BLOCKED) is allowed."""
    for state in RunState:
        assert allowed(state, state)


def test_plan_only_runs_never_move():
    """PLANNED is a summary.json state of ``acr-gc plan``: no ledger run reaches or leaves it."""
    for state in RunState:
        assert allowed(S.PLANNED, state) is (state is S.PLANNED)
        assert allowed(state, S.PLANNED) is (state is S.PLANNED)


def test_unknown_names_are_refused():
    with pytest.raises(ValueError):
        check_transition("RUNNING", "DONE")


def test_the_groups():
    assert FINISHED == set(RunState) - {S.RUNNING}
    assert GC_ENDED == {S.GC_DONE, S.COMPLETE}


def test_summary_json_holds_the_plain_name_and_never_running():
    from pydantic import ValidationError

    from acr_gc.reports.summary import CostSummary, Summary

    def summary(state):
        return Summary(run_id="r", instance_id="i", bucket="b", state=state,
                       cost=CostSummary(currency="CNY", price_per_gb_month=0.12))

    dumped = summary("GC_DONE").model_dump(mode="json")
    assert type(dumped["state"]) is str and dumped["state"] == "GC_DONE"
    assert '"state":"COMPLETE"' in summary(S.COMPLETE).model_dump_json()
    with pytest.raises(ValidationError, match="never RUNNING"):
        summary("RUNNING")
    with pytest.raises(ValidationError):
        summary("DONE")
