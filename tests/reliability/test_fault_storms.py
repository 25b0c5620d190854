"""Storms while a whole run is under way: throttling storms, 5xx bursts, dropped
connections — the run rides over them and its results are still exactly right.

Unlike the steady 5 % of tests/pipeline/test_pipeline_failures.py, the weather here comes
in fronts: a background thread alternates calm spells with storms for as long as the
run lasts — a burst where 60 % of all requests answer 503 or lose their connection after
the response head, then a throttling storm (the emulator admits 3 requests a second).
A storm lasts 1.2 s, about as long as the backoff of the first four retries, so calls are
caught in one and must retry into the calm; `api.retries: 10` is what an operator would
set for an API known to storm.

What it proves: the run completes, GC deleted exactly the hand-worked expired set (the
emulator's truth, tests/pipeline/pipeline_support.py), one GC task, the policy back as it
was, storage figures = truth; the storms did hit (the emulator counted throttled, 503 and
dropped answers) and every retry the adapters made answers one of them.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from pipeline_support import OTHER_POLICY, RUN_RETAINED, config_dict, dataset, run_flow, summary_of  # noqa: E402

from acr_gc.cloud import calls  # noqa: E402
from acr_gc.emulator.process import EmulatorProcess  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

CALM = {"qps": 0, "fault_rate": 0}
STORMS = [{"qps": 0, "fault_rate": 0.6}, {"qps": 3, "fault_rate": 0}]  # the 5xx burst meets the inventory
STORM_S, CALM_S = 1.2, 0.6


class Weather:
    """Calm, storm, calm, the other storm, … on the emulator until stopped."""

    def __init__(self, emu):
        self.emu, self.storms = emu, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set() and not sum(self.emu.truth()["request_counts"].values()):
            self._stop.wait(0.05)  # the weather starts with the run's first request
        while not self._stop.is_set():
            storm = STORMS[self.storms % len(STORMS)]
            self.emu.set_faults(**storm)
            self.storms += 1
            if self._stop.wait(STORM_S):
                break
            self.emu.set_faults(**CALM)
            if self._stop.wait(CALM_S):
                break
        self.emu.set_faults(**CALM)

    def __enter__(self) -> "Weather":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


def test_a_run_through_storms_of_throttling_5xx_and_dropped_connections_is_exactly_right(
        prefect_api_url, tmp_path, monkeypatch):
    with EmulatorProcess(dataset(run_policy=OTHER_POLICY), gc_tags_per_second=5, seed=7) as emu:
        storage_before = emu.truth()["buckets"]["cri-run-storage"]["storage_bytes"]
        config = config_dict((emu.acr_endpoint, emu.oss_endpoint), tmp_path, "cri-run", "cri-run-storage",
                             api={"qps": 200, "concurrency": 4, "retries": 10})
        before = calls.stats()
        with Weather(emu) as weather:
            state, folder = run_flow(config, monkeypatch)
        after = calls.stats()
        truth = emu.truth()

    faults = truth["fault_counts"]
    print(f"storms {weather.storms}, emulator fault counts {faults}, adapter retries {after.retries - before.retries}")
    assert state.is_completed(), (state.message, faults)
    assert weather.storms >= 2, "the run should have met both kinds of storm"
    assert sum(n for k, n in faults.items() if k.endswith("throttled")) > 0, faults
    assert sum(n for k, n in faults.items() if k.endswith(("unavailable", "dropped"))) > 0, faults
    retries = after.retries - before.retries
    # Each retry answers one fault the emulator counted; a dropped answer to a call that
    # is not safe to repeat (the GC start) is looked up instead of retried.
    assert 0 < retries <= sum(faults.values()), (retries, faults)

    summary = summary_of(folder)
    assert summary["state"] == "GC_DONE"
    assert summary["checks"] == {"unexpected_deletions": 0, "missed_deletions": 0, "freeze_restored": True}
    assert truth["instances"]["cri-run"]["tags"] == RUN_RETAINED
    assert [t["state"] for t in truth["instances"]["cri-run"]["gc_tasks"]] == ["SUCCESS"]
    assert truth["buckets"]["cri-run-storage"]["policy"] == OTHER_POLICY
    assert summary["storage"]["before_bytes"] == storage_before
