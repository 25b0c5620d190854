"""The report as people see it: report.html in headless Chromium, the artifacts in Prefect.

Chromium is Debian's ``chromium`` package (``apt-get install -y chromium``). Without it
the test FAILS (it is a requirement of the project's CI, not an optional extra). The
screenshot is kept in ``test-artifacts/report-screenshot.png`` (gitignored) for a
person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from test_reports_build import add_run

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
HEADLINE = "Reclaimed 3.50 GiB (35.00%) — saving 0.42 CNY per month"


def chromium(*args: str, user_data_dir: Path) -> subprocess.CompletedProcess:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"{CHROMIUM} not found: the report test needs Debian's chromium package "
            "(apt-get install -y chromium)",
            pytrace=False,
        )
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={user_data_dir}", *args],
        capture_output=True, text=True, timeout=60,
    )


@pytest.mark.slow
def test_report_html_renders_in_headless_chromium(tmp_path):
    from acr_gc.ledger import Ledger
    from acr_gc.reports.build import build_report

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    folder = build_report(ledger, add_run(ledger, tmp_path / "out"))
    ledger.dispose()
    url = (folder / "report.html").resolve().as_uri()

    shot = tmp_path / "shot.png"
    result = chromium(f"--screenshot={shot}", "--window-size=1200,1600", url, user_data_dir=tmp_path / "ud1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    keep = ROOT / "test-artifacts"
    keep.mkdir(exist_ok=True)
    shutil.copyfile(shot, keep / "report-screenshot.png")

    dom = chromium("--dump-dom", url, user_data_dir=tmp_path / "ud2")
    assert dom.returncode == 0, dom.stderr[-2000:]
    headline = re.search(r'<p class="headline" id="headline">(.*?)</p>', dom.stdout, re.S)
    assert headline is not None, dom.stdout[:2000]
    assert headline.group(1).strip() == HEADLINE
    # the chart is inside the page and was decoded by the browser's parser as an image
    assert re.search(r'<img class="chart" src="data:image/png;base64,iVBOR', dom.stdout)
    # a hostile namespace is text in the rendered DOM, not an element
    assert "&lt;script&gt;alert('ns')&lt;/script&gt;" in dom.stdout
    assert "<script" not in dom.stdout.lower()
    # self-contained: no http(s) reference anywhere in the file
    assert not re.search(r"(src|href)=\"https?:", (folder / "report.html").read_text())


@pytest.mark.slow
def test_artifacts_on_a_real_prefect_server(tmp_path, prefect_api_url):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from acr_gc.ledger import Ledger
    from acr_gc.reports.build import build_report

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    run_id = add_run(ledger, tmp_path / "out")

    @flow(name="report-artifacts-test")
    def render() -> str:
        return str(build_report(ledger, run_id))

    state = render(return_state=True)
    assert state.is_completed(), state.message
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    ledger.dispose()
    by_key = {a.key: a for a in found}
    assert set(by_key) == {
        "acr-gc-report-cri-demo", "acr-gc-namespaces-cri-demo", "acr-gc-report-link-cri-demo",
        "acr-gc-storage-chart-cri-demo",
    }
    assert by_key["acr-gc-report-cri-demo"].type == "markdown"
    assert by_key["acr-gc-report-cri-demo"].data.startswith("# " + HEADLINE)
    assert by_key["acr-gc-namespaces-cri-demo"].type == "table"
    assert by_key["acr-gc-report-link-cri-demo"].type == "markdown"  # Prefect stores links as markdown
    assert "file://" in by_key["acr-gc-report-link-cri-demo"].data
    assert by_key["acr-gc-storage-chart-cri-demo"].type == "image"
    assert by_key["acr-gc-storage-chart-cri-demo"].data.startswith("data:image/png;base64,iVBOR")
