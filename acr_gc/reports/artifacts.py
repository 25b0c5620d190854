"""The report on the Prefect dashboard (DESIGN section 8): four artifacts per run.

* ``acr-gc-report-<instance>`` — the report as markdown (the chart embedded as a
  ``data:`` URI, since the dashboard cannot reach the run folder);
* ``acr-gc-namespaces-<instance>`` — the per-namespace table;
* ``acr-gc-report-link-<instance>`` — a ``file://`` link to ``report.html``;
* ``acr-gc-storage-chart-<instance>`` — the storage chart, ``create_image_artifact``
  with a ``data:image/png;base64`` URL (Prefect 3.9 stores the URL as given and the UI
  puts it in an ``<img src>``; a ``file://`` URL would not load in a browser page served
  over http).

Keys are stable per instance (lowercase letters, digits and dashes, as Prefect
requires), so each key's history on the Artifacts page is the instance's monthly runs.
Artifacts are created only inside a flow or task run: a CLI re-render outside Prefect
writes the files and nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from pathlib import Path

from acr_gc.reports.render import ReportInput, gib, headline, render_markdown

log = logging.getLogger(__name__)


def artifact_key(kind: str, instance_id: str) -> str:
    """``acr-gc-<kind>-<instance>``, the one key of every artifact acr-gc makes: lowercase
    letters, digits and dashes, as Prefect requires. An instance id that had to be changed
    to fit gets a short hash of the original, so two ids never share a key's history."""
    clean = re.sub(r"[^a-z0-9-]", "-", instance_id.lower())
    if clean != instance_id:
        clean = f"{clean}-{hashlib.sha256(instance_id.encode()).hexdigest()[:8]}"
    return f"acr-gc-{kind}-{clean}"


def in_prefect_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def namespace_table(report: ReportInput) -> list[dict]:
    frame = report.namespaces
    if frame is None or len(frame) == 0:
        return []
    frame = frame.fillna({"tags": 0, "expired": 0, "unregenerable": 0, "expected_bytes": 0})
    return [
        {
            "namespace": str(r.namespace),
            "image versions": int(r.tags),
            "expired (deleted)": int(r.expired),
            "cannot be rebuilt": int(r.unregenerable),
            "expected to free": gib(int(r.expected_bytes)),
            "expected bytes": int(r.expected_bytes),
        }
        for r in frame.sort_values("namespace", kind="stable").itertuples(index=False)
    ]


def publish_artifacts(report: ReportInput, folder: Path, chart_png: bytes | None = None) -> dict[str, str] | None:
    """Create the four artifacts; returns {kind: key}, or None outside a Prefect run.

    A failure to reach the Prefect API is logged, never raised: the files are the
    report, the artifacts are a view of them.
    """
    if not in_prefect_run():
        return None
    from prefect.artifacts import (
        create_image_artifact,
        create_link_artifact,
        create_markdown_artifact,
        create_table_artifact,
    )

    folder = Path(folder).resolve()
    if chart_png is None and (folder / "storage.png").exists():
        chart_png = (folder / "storage.png").read_bytes()
    data_uri = "data:image/png;base64," + base64.b64encode(chart_png).decode("ascii") if chart_png else None
    instance = report.instance_id
    keys = {kind: artifact_key(kind, instance) for kind in ("report", "namespaces", "report-link", "storage-chart")}
    title = headline(report.figures, report.state)
    try:
        create_markdown_artifact(
            markdown=render_markdown(report, image_src=data_uri or "storage.png"),
            key=keys["report"],
            description=f"{instance} {report.run_id}: {title}",
        )
        create_table_artifact(
            table=namespace_table(report) or [{"namespace": "(none recorded)"}],
            key=keys["namespaces"],
            description=f"{instance} {report.run_id}: per-namespace plan",
        )
        create_link_artifact(
            link=(folder / "report.html").as_uri(),
            link_text=f"report.html — {title}",
            key=keys["report-link"],
            description=f"{instance} {report.run_id}: the self-contained report for finance",
        )
        if data_uri:
            create_image_artifact(
                image_url=data_uri,
                key=keys["storage-chart"],
                description=f"{instance} {report.run_id}: bucket storage over time",
            )
    except Exception as exc:  # the API being unreachable must not fail a finished run
        log.warning("could not publish the report artifacts: %s", exc)
    return keys


__all__ = ["artifact_key", "in_prefect_run", "namespace_table", "publish_artifacts"]
