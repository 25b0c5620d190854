"""The deployment end to end (issue 6, DESIGN section 11): a real ``prefect server
start`` (UI on), the work pool created with the CLI, ``prefect --no-prompt deploy --all``
of the project's own prefect.yaml (unmodified, from the project root), a process worker,
and the ``reclaim-storage/monthly`` deployment triggered with ``run_deployment`` against
the emulator.

- The run must end Completed with its artifacts on the server, read back through the
  Prefect API, and the emulated instance must hold exactly the hand-worked retained set
  (deploy_support.py's docstring), its bucket policy the original one.
- The Prefect UI's flow-run page for that run: headless Chromium renders the page served
  by the same server, the PNG is kept under ``test-artifacts/`` and the report artifact's
  headline is checked in the page's DOM (``--dump-dom``, after the SPA has fetched and
  rendered it within a virtual-time budget).
"""

from __future__ import annotations

import html
import re
import tempfile
from pathlib import Path

import pytest

import deploy_support as ds

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def monthly_run():
    """One deployed stack and run for the tests of this file, stopped when the file ends.

    The API tests and the UI test were two files, each with a session fixture for the same
    stack: when pytest-xdist handed them to two workers each built its own (server, deploy,
    worker, monthly run), and both stayed up, idle, until the session ended (~60 CPU-s of
    the suite, benchmarks/suite_census.py)."""
    with ds.deployment_server() as server:
        run = ds.MonthlyRun(server)  # stops what it started if it fails
        try:
            yield run
        finally:
            run.stop()


def _artifacts(api_url: str, flow_run_id) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with ds.api_settings(api_url), get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))


def test_prefect_yaml_deploys_every_deployment_onto_the_process_pool(monthly_run):
    from prefect.client.orchestration import get_client

    with ds.api_settings(monthly_run.server.api_url), get_client(sync_client=True) as client:
        pool = client.read_work_pool("acr-gc")
        deployments = {d.name: d for d in client.read_deployments()}
        flows = {f.id: f.name for f in client.read_flows()}
    assert pool.type == "process"
    assert {f"{flows[d.flow_id]}/{name}" for name, d in deployments.items()} == {
        "reclaim-storage/monthly", "sample-storage/daily-sampler", "reclaim-fleet/fleet"}
    # module entrypoints (issue 14 item 4): the worker imports the installed package's flow
    assert {d.entrypoint for d in deployments.values()} == {
        "acr_gc.flows.reclaim.reclaim_storage", "acr_gc.flows.sample.sample_storage",
        "acr_gc.flows.fleet.reclaim_fleet"}
    for name, deployment in deployments.items():
        assert deployment.work_pool_name == "acr-gc", name
        # the pull step resolved {{ $PWD }} to the folder `prefect deploy` ran in
        assert deployment.pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(ds.ROOT)}}], name
    monthly = deployments["monthly"]
    assert [(s.schedule.cron, s.schedule.timezone) for s in monthly.schedules] == [("0 2 1 * *", "Asia/Shanghai")]
    assert monthly.global_concurrency_limit is not None and monthly.global_concurrency_limit.limit == 1
    # production placeholders: a Block by name, never a secret
    assert monthly.parameters["config"]["target"]["credentials"] == "block:acr-gc-prod"


def test_monthly_deployment_run_completes_with_artifacts_and_reclaims_the_instance(monthly_run):
    run = monthly_run
    flow_run = run.flow_run
    assert flow_run.state is not None and flow_run.state.is_completed(), (
        f"flow run {flow_run.id} ended {flow_run.state and flow_run.state.type} "
        f"({flow_run.state and flow_run.state.message})\n{run.diagnostics()}")
    print(f"\nmonthly deployment run: {run.seconds:.1f}s from run_deployment to Completed")
    assert flow_run.state.message == "COMPLETE"  # inline sampling closed the window
    assert flow_run.deployment_id is not None and flow_run.work_pool_name == "acr-gc"
    assert flow_run.parameters["config"]["target"]["instance_id"] == ds.DEP

    # ---- the cloud: exactly the hand-worked retained set; the policy the original one ---
    bucket = ds.bucket_of(ds.DEP)
    assert run.truth_before["instances"][ds.DEP]["tags"] == ds.all_tags(run.dataset, ds.DEP)
    assert run.truth_after["instances"][ds.DEP]["tags"] == ds.DEP_RETAINED
    assert run.truth_after["buckets"][bucket]["policy"] == ds.original_policy(bucket)
    tasks = run.truth_after["instances"][ds.DEP]["gc_tasks"]
    assert [t["state"] for t in tasks] == ["SUCCESS"]

    # ---- the run folder the worker's flow run wrote --------------------------------------
    instance_dir = run.workdir / "out" / ds.DEP
    folders = [p for p in instance_dir.iterdir() if p.is_dir()]
    assert len(folders) == 1, folders
    summary = ds.read_json(folders[0] / "summary.json")
    assert summary["state"] == "COMPLETE"
    assert summary["plan"]["tags_expired"] == 2 == summary["gc"]["tags_deleted"]
    checks = dict(summary["checks"])
    assert "any-retains/count-or-match/full" in checks.pop("readings_consistent")  # issue 11
    assert checks == {"unexpected_deletions": 0, "missed_deletions": 0, "freeze_restored": True}
    assert summary["storage"]["reclaimed_bytes"] > 0

    # ---- the artifacts, read back through the Prefect API -------------------------------
    artifacts = _artifacts(run.server.api_url, flow_run.id)
    by_key: dict = {}
    for artifact in artifacts:
        by_key.setdefault(artifact.key, []).append(artifact)
    key = lambda kind: f"acr-gc-{kind}-{ds.DEP}"  # noqa: E731
    expected = {key(k): t for k, t in (("report", "markdown"), ("namespaces", "table"), ("report-link", "markdown"),
                                         ("storage-chart", "image"), ("inventory", "table"), ("plan", "table"),
                                         ("gate", "table"))}
    assert set(by_key) >= set(expected), sorted(k for k in by_key if k)
    for k, artifact_type in expected.items():
        assert by_key[k][-1].type == artifact_type, (k, by_key[k][-1].type)
    report = by_key[key("report")][-1].data
    assert report.startswith("# ") or "Reclaimed" in report
    assert "Reclaimed" in report and "per month" in report
    assert (folders[0] / "report.html").resolve().as_uri() in by_key[key("report-link")][-1].data
    assert by_key[key("storage-chart")][-1].data.startswith("data:image/png;base64,")
    namespaces = by_key[key("namespaces")][-1].data
    assert "apps" in namespaces and "tools" in namespaces
    # the GC progress artifact: no key, type progress, ended at 100 (SUCCESS)
    progress = [a for a in artifacts if a.type == "progress"]
    assert len(progress) == 1 and float(progress[0].data) == 100.0


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
