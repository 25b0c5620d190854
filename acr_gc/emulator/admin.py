"""Admin endpoints under ``/_emulator/`` on the ACR port (no signature), as moto's ``/moto-api/``.

``reset`` · ``load`` · ``clock/advance`` · ``faults`` · ``truth`` (DESIGN section 10), plus
``readings`` (GET/POST: the readings of the lifecycle rules played, reset by reset and load),
``objects/{bucket}`` (current and noncurrent object versions) for tests that check the
exact objects GC deleted, and ``dump``/``restore`` (the whole state, across a restart). Storage-size answers apply due lifecycle expiry first, as OSS
would have done by then.

The admin API has no signature, so it guards itself as a local development server
should: a POST must say ``Content-Type: application/json`` (a web page can send
``text/plain`` across origins without asking, but not JSON), and every request must name
a loopback host in its ``Host`` header (a page on another name rebound to 127.0.0.1
cannot). ``dump`` leaves the access key secrets out unless asked (``?secrets=true``).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from acr_gc.emulator import dataset as ds
from acr_gc.emulator.faults import FaultSettings
from acr_gc.emulator.retention import Readings
from acr_gc.emulator.gc import GcService
from acr_gc.emulator.storage import NoSuchBucket
from acr_gc.input_errors import first_problem
from acr_gc.netloc import is_loopback


def _bad(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class AdminGuard:
    """Refuses admin requests a browser could be made to send from another origin."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            refusal = None
            if not is_loopback(headers.get("host", "")):
                refusal = _bad("the admin API answers only requests to a loopback host (Host: 127.0.0.1, localhost "
                               "or [::1])", 403)
            elif scope["method"] == "POST" and \
                    headers.get("content-type", "").split(";", 1)[0].strip().lower() != "application/json":
                refusal = _bad("admin POSTs must be sent with Content-Type: application/json", 415)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _json(request: Request) -> dict:
    raw = await request.body()
    if not raw.strip():
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("the body must be a JSON object")
    return value


def truth(state, gc: GcService, faults: FaultSettings, at: datetime | None = None) -> dict:
    now = state.now()
    state.storage.apply_lifecycle(now)
    buckets = {}
    for name, bucket in state.storage.buckets.items():
        stat = bucket.stat()
        buckets[name] = {
            "live_bytes": stat.live_bytes,
            "noncurrent_bytes": stat.noncurrent_bytes,
            "objects": stat.object_count,
            "live_objects": stat.live_objects,
            "noncurrent_objects": stat.noncurrent_objects,
            "storage_bytes": stat.storage_bytes,
            "versioning": bucket.versioning,
            "policy": json.loads(bucket.policy) if bucket.policy else None,
            "owner": bucket.owner,
        }
        if at is not None:  # the figures as they were then (what a delayed GetBucketStat answers)
            storage, objects, markers = bucket.stat_as_of(at)
            buckets[name]["stat_at"] = {"time": at.isoformat().replace("+00:00", "Z"), "storage_bytes": storage,
                                        "objects": objects, "delete_markers": markers}
    instances = {}
    for inst in state.registry.instances.values():
        instances[inst.instance_id] = {
            "tags": {repo.full_name: sorted(repo.tags) for repo in inst.repos},
            "gc_tasks": [
                {
                    "task_id": t.task_id,
                    "state": t.state,
                    "progress": t.progress,
                    "tags_deleted": t.tags_deleted,
                    "objects_deleted": t.objects_deleted,
                    "bytes_deleted": t.bytes_deleted,
                }
                for t in inst.gc_tasks
            ],
        }
    return {
        "clock": now.isoformat().replace("+00:00", "Z"),
        "buckets": buckets,
        "instances": instances,
        "faults": faults.as_dict(),
        "request_counts": dict(faults.request_counts),
        "fault_counts": dict(faults.fault_counts),
    }


def create_app(state, gc: GcService, faults: FaultSettings) -> Starlette:
    async def reset(request: Request) -> JSONResponse:
        gc.abort_all()
        state.reset()
        faults.reset()
        gc.readings = gc.start_readings
        return JSONResponse({"ok": True, "clock": state.now().isoformat()})

    async def load(request: Request) -> JSONResponse:
        try:
            data = ds.Dataset.model_validate(await _json(request))
        except ValidationError as exc:
            return _bad(f"invalid dataset: {first_problem(exc)}")
        except RecursionError:
            return _bad("invalid dataset: nested too deeply")
        except ValueError as exc:
            return _bad(f"invalid dataset: {exc}")
        before = state.dump()  # a load that fails half-way leaves the state as it was, not reset
        gc.abort_all()
        try:
            state.load(data)
        except (ValueError, KeyError) as exc:
            state.restore(before)
            return _bad(f"invalid dataset: {exc}")
        gc.readings = gc.start_readings  # a new dataset is played with the serve-time readings
        return JSONResponse({"ok": True, "clock": state.now().isoformat()})

    async def advance(request: Request) -> JSONResponse:
        try:
            days = float((await _json(request)).get("days"))
            if days < 0:
                raise ValueError
        except (TypeError, ValueError):
            return _bad('expected {"days": N} with N >= 0')
        now = state.clock.advance(days)
        state.storage.apply_lifecycle(now)
        gc.run_due_rules()
        return JSONResponse({"clock": now.isoformat().replace("+00:00", "Z")})

    async def set_faults(request: Request) -> JSONResponse:
        if request.method == "GET":
            return JSONResponse(faults.as_dict())
        try:
            faults.update(await _json(request))
        except (TypeError, ValueError) as exc:
            return _bad(str(exc))
        return JSONResponse(faults.as_dict())

    async def set_readings(request: Request) -> JSONResponse:
        """The readings of the lifecycle rules GC and automatic rule runs play (retention.Readings)."""
        if request.method == "POST":
            try:
                changes = await _json(request)
                unknown = set(changes) - {"combination", "count_regexp", "regexp_match"}
                if unknown:
                    raise ValueError(f"unknown reading {sorted(unknown)[0]!r}")
                gc.readings = Readings(**{**gc.readings.as_dict(), **changes})
            except (TypeError, ValueError) as exc:
                return _bad(str(exc))
        return JSONResponse(gc.readings.as_dict())

    async def get_truth(request: Request) -> JSONResponse:
        at = request.query_params.get("at")
        if at is not None:
            try:
                at = datetime.fromisoformat(at.replace("Z", "+00:00"))
                at = at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at
            except ValueError:
                return _bad("at must be an ISO-8601 time")
        return JSONResponse(truth(state, gc, faults, at))

    async def dump(request: Request) -> JSONResponse:
        return JSONResponse(state.dump(secrets=request.query_params.get("secrets", "").lower() == "true"))

    async def restore(request: Request) -> JSONResponse:
        try:
            state.restore(await _json(request))
        except ValueError as exc:
            return _bad(str(exc))
        return JSONResponse({"ok": True, "clock": state.now().isoformat().replace("+00:00", "Z")})

    async def objects(request: Request) -> JSONResponse:
        try:
            bucket = state.storage.bucket(request.path_params["bucket"])
        except NoSuchBucket:
            return _bad("no such bucket", 404)
        bucket.apply_lifecycle(state.now())
        current, noncurrent = [], []
        for v in bucket.all_versions():
            if v.delete_marker:
                continue
            row = {"key": v.key, "size": v.size, "version_id": v.version_id}
            (current if bucket.is_latest(v) else noncurrent).append(row)
        return JSONResponse({"current": current, "noncurrent": noncurrent})

    return Starlette(
        routes=[
            Route("/reset", reset, methods=["POST"]),
            Route("/load", load, methods=["POST"]),
            Route("/clock/advance", advance, methods=["POST"]),
            Route("/faults", set_faults, methods=["GET", "POST"]),
            Route("/readings", set_readings, methods=["GET", "POST"]),
            Route("/truth", get_truth, methods=["GET"]),
            Route("/dump", dump, methods=["GET"]),
            Route("/restore", restore, methods=["POST"]),
            Route("/objects/{bucket}", objects, methods=["GET"]),
        ],
        middleware=[Middleware(AdminGuard)],
    )
