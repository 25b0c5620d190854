"""The Prefect UI's flow-run page for the deployed monthly run (issue 6): headless
Chromium renders the page served by the same ``prefect server start`` (UI on), the PNG is
kept under ``test-artifacts/`` and the report artifact's headline is checked in the page's
DOM (``--dump-dom``, after the SPA has fetched and rendered it within a virtual-time
budget).

The run is test_deploy_e2e.py's (deploy_support.acquire_monthly_run: one per session).
"""

from __future__ import annotations

import html
import re
import tempfile
from pathlib import Path

import pytest

import deploy_support as ds

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def monthly_run():
    run = ds.acquire_monthly_run()
    yield run
    ds.release_monthly_run()


def _headline(run) -> str:
    """The report's headline as the report markdown carries it (the artifact's data)."""
    folder = next(p for p in (run.workdir / "out" / ds.DEP).iterdir() if p.is_dir())
    markdown = (folder / "report.md").read_text(encoding="utf-8")
    match = re.search(r"Reclaimed [^\n]*? per month", markdown)
    assert match, markdown[:2000]
    return match.group(0).replace("**", "")


def _page(url: str, png: Path) -> str:
    """Render ``url`` twice in fresh profiles: the DOM (returned as visible text, also kept
    as .html beside the PNG) and the screenshot ``png``."""
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="acr-gc-chromium-") as profile:
        dom = ds.chromium(url, Path(profile) / "dom", "--dump-dom")
        shot = ds.chromium(url, Path(profile) / "shot", f"--screenshot={png}")
    png.with_suffix(".html").write_text(dom.stdout, encoding="utf-8")
    assert dom.returncode == 0 and dom.stdout.strip(), f"chromium --dump-dom failed on {url}:\n{dom.stderr[-3000:]}"
    assert shot.returncode == 0 and png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", \
        f"chromium --screenshot failed on {url}:\n{shot.stderr[-3000:]}"
    visible = re.sub(r"<(style|script)\b.*?</\1>", " ", dom.stdout, flags=re.S | re.I)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", visible)))


def _report_artifact(run):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with ds.api_settings(run.server.api_url), get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run.flow_run.id]),
            key=ArtifactFilterKey(any_=[f"acr-gc-report-{ds.DEP}"])))
    assert len(found) == 1, found
    return found[0]


def test_flow_run_page_shows_the_report_artifact(monthly_run):
    """Prefect 3.9 serves two UIs: V1 at ``/`` and V2 at ``/v2`` (``ui-settings`` says
    ``default_ui: v2``). V2's flow-run route takes ``?tab=Artifacts``; V1 ignores a tab in
    the query and opens on Logs, so the V2 page is the one that shows the artifacts."""
    run = monthly_run
    assert run.flow_run.state.is_completed(), run.diagnostics()
    headline = _headline(run)
    ds.ARTIFACTS_DIR.mkdir(exist_ok=True)

    png = ds.ARTIFACTS_DIR / "prefect-ui-flow-run-artifacts.png"
    text = _page(f"{run.server.url}/v2/runs/flow-run/{run.flow_run.id}?tab=Artifacts", png)
    print(f"\nscreenshot: {png}\nvisible text: {text[:1200]}")
    assert run.flow_run.name in text and "Completed" in text, f"the flow-run page did not render:\n{text[:3000]}"
    for kind in ("report", "namespaces", "report-link", "storage-chart", "inventory", "plan", "gate"):
        assert f"acr-gc-{kind}-{ds.DEP}" in text, f"artifact card {kind} missing:\n{text[:4000]}"
    # the report card's description carries the headline of the report markdown
    assert headline in text, f"headline {headline!r} not on the flow-run page:\n{text[:4000]}"

    # the report artifact's own page: the markdown rendered in full
    artifact = _report_artifact(run)
    png = ds.ARTIFACTS_DIR / "prefect-ui-report-artifact.png"
    text = _page(f"{run.server.url}/v2/artifacts/artifact/{artifact.id}", png)
    print(f"screenshot: {png}\nvisible text: {text[:1200]}")
    assert headline in text, f"headline {headline!r} not on the artifact page:\n{text[:4000]}"
    assert "per month" in text and ds.DEP in text
