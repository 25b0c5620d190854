"""Which Prefect API a command uses, and how it says it has none (issue 16).

`acr-gc plan` as a subprocess against the emulator with a tiny dataset:
- a Prefect server already up on this machine (PREFECT_SERVER_API_HOST/PORT, no
  PREFECT_API_URL) is reused: the flow run is in *that* server's API, and the command
  started no server of its own;
- ``plan`` and ``forecast`` run their flow without Prefect's flow-run heartbeats (whose
  thread the engine joins for up to a second at the end of every run), unless the user
  set a heartbeat frequency;
- the user's own start-up timeout wins, and when it is exceeded the command says so in
  one line naming the setting, exits 1, and leaves no server running;
- a Prefect API that answers 503 (its SQLite database locked, as a busy machine's local
  server does) to more attempts than Prefect's own five retries does not fail the command;
- a temporary server whose port is taken before it binds it (on a busy machine any
  outgoing connection may get that port) is started again on another port, and the
  command's Prefect client talks to that one, never to whoever holds the first port (not
  even when that one answers Prefect's health check).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
import yaml

from emulator_kit import AK, SECRET
from http_kit import LoopbackHttpServer
from proxy_kit import PrefectApiProxy

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LAYER = "sha256:" + "a" * 64


def _dataset(credentials) -> dict:
    tags = [{"tag": f"v{i}", "digest": "sha256:" + f"{i + 1:064x}", "updated": f"2026-10-{i + 1:02d}T00:00:00Z",
             "layers": [LAYER]} for i in range(4)]
    return {
        "clock": "2026-11-01T00:00:00Z", "credentials": credentials, "layers": {LAYER: 100},
        "instances": [{"instance_id": "cri-start", "name": "start", "region": "cn-hangzhou",
                       "gc_whitelisted": True, "bucket": "cri-start-storage", "namespaces": ["ns"],
                       "repositories": [{"namespace": "ns", "name": "app", "source_code": None, "build_rules": [],
                                         "sync_rules": [], "tags": tags}],
                       "charts": [], "lifecycle_rules": []}],
        "buckets": [{"name": "cri-start-storage", "versioning": None, "lifecycle": [], "policy": None,
                     "extra_objects": []}],
    }


@pytest.fixture
def plan_args(emulator, credentials, tmp_path):
    emulator.load(_dataset(credentials))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "target": {"instance_id": "cri-start", "bucket": "cri-start-storage", "acr_endpoint": emulator.acr_endpoint,
                   "oss_endpoint": emulator.oss_endpoint},
        "report": {"out_dir": str(tmp_path / "out")},
        "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
        "freeze": {"principals": ["acs:ram::1234567890:user/ci-pusher"]},
    }), encoding="utf-8")
    return ["plan", "--config", str(config)]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "PREFECT_"))}
    env.update(ALIBABA_CLOUD_ACCESS_KEY_ID=AK, ALIBABA_CLOUD_ACCESS_KEY_SECRET=SECRET,
               PREFECT_HOME=str(tmp_path / "prefect-home"), **extra)
    return env


def _servers_started_by(pid: int) -> list[int]:
    """Prefect server processes whose parent is `pid` (seen while it runs)."""
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)
                if "prefect.server.api.server:create_app" in " ".join(child.cmdline())]
    except psutil.NoSuchProcess:
        return []


def _run_watching_children(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, set[int]]:
    process = subprocess.Popen([sys.executable, "-m", "acr_gc.cli", *args], env=env, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    servers: set[int] = set()
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        servers.update(_servers_started_by(process.pid))
        time.sleep(0.05)
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), servers


def test_a_prefect_server_already_up_on_this_machine_is_reused(plan_args, prefect_api_url, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    api = urlsplit(prefect_api_url)
    flows = FlowFilter(name=FlowFilterName(any_=["plan-instance"]))
    with get_client(sync_client=True) as client:
        before = len(client.read_flow_runs(flow_filter=flows))
    env = _env(tmp_path, PREFECT_SERVER_API_HOST=api.hostname, PREFECT_SERVER_API_PORT=str(api.port))
    done, servers = _run_watching_children(plan_args, env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert servers == set(), "a server was started although one was up"
    with get_client(sync_client=True) as client:
        assert len(client.read_flow_runs(flow_filter=flows)) == before + 1


def test_the_users_startup_timeout_wins_and_is_named_when_exceeded(plan_args, tmp_path):
    env = _env(tmp_path, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1",
               PREFECT_SERVER_API_PORT="9")  # nothing listens there: no server to reuse
    done, servers = _run_watching_children(plan_args, env)
    assert done.returncode == 1, (done.stdout[-1000:], done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in lines[0], lines
    assert "within 1 s (your " in lines[0], lines[0]
    assert servers, "the command never started its temporary server"
    assert not [pid for pid in servers if psutil.pid_exists(pid) and
                psutil.Process(pid).status() != psutil.STATUS_ZOMBIE], "the temporary server outlived the command"


def test_read_only_flows_run_without_heartbeats_unless_the_user_set_a_frequency(prefect_api_url):
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, get_current_settings, temporary_settings

    from acr_gc.prefect_api import without_flow_heartbeats

    prefects_own = get_current_settings().flows.heartbeat_frequency
    assert prefects_own is not None  # heartbeats are on by default: what the context turns off
    with without_flow_heartbeats():
        assert get_current_settings().flows.heartbeat_frequency is None
    assert get_current_settings().flows.heartbeat_frequency == prefects_own
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 45}), without_flow_heartbeats():
        assert get_current_settings().flows.heartbeat_frequency == 45


class _Squatter(BaseHTTPRequestHandler):
    """Holds a port the command chose for its server and notes every request: answers 404,
    or, as another Prefect server would, 200 to ``/api/health`` when ``healthy``."""

    requests: list[str] = []
    healthy = False

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.requests.append(self.path)
        if self.healthy and self.path == "/api/health":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"true")
            return
        self.send_error(404)

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def log_message(self, *args) -> None:
        pass


def _squat_the_servers_port(args: list[str], env: dict[str, str]):
    """Run the command; the moment its temporary server process appears (uvicorn imports
    for a second or more before it binds), listen on that server's port ourselves.
    Returns (result, ports the command's servers were started on, squatter or None when
    uvicorn bound the port first)."""
    process = subprocess.Popen([sys.executable, "-m", "acr_gc.cli", *args], env=env, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ports: list[int] = []
    squatter = None
    deadline = time.monotonic() + 300
    try:
        while process.poll() is None and time.monotonic() < deadline:
            for pid in _servers_started_by(process.pid):
                try:
                    port = int(re.search(r"--port (\d+)", " ".join(psutil.Process(pid).cmdline())).group(1))
                except (psutil.NoSuchProcess, AttributeError):
                    continue
                if port not in ports:
                    ports.append(port)
                if squatter is None and len(ports) == 1:
                    try:
                        squatter = LoopbackHttpServer(_Squatter, port)
                    except OSError:  # the server bound it first: nothing to see this time
                        squatter = False
                    else:
                        threading.Thread(target=squatter.serve_forever, daemon=True).start()
            time.sleep(0.01)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if squatter:
            squatter.shutdown()
            squatter.server_close()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), ports, squatter or None


@pytest.mark.parametrize("squatter_answers_health", [False, True], ids=["a-404-server", "another-prefect-server"])
def test_a_temporary_server_whose_port_is_taken_is_started_again_and_used(plan_args, tmp_path,
                                                                          squatter_answers_health):
    env = _env(tmp_path, PREFECT_SERVER_API_PORT="9")  # nothing listens there: no server to reuse
    _Squatter.healthy = squatter_answers_health  # then its health answer must not be taken for the command's own
    for _attempt in range(3):
        _Squatter.requests = []
        done, ports, squatter = _squat_the_servers_port(plan_args, env)
        if squatter:
            break
    assert squatter, f"the server bound its port before the test could take it, three times: {ports}"
    assert done.returncode == 0, (done.stdout[-1000:], done.stderr[-3000:])
    assert len(ports) >= 2 and ports[0] not in ports[1:], ports
    # it asked that port whether its server was up (404: not yet) until uvicorn gave up on it
    assert [path for path in _Squatter.requests if path != "/api/health"] == [], \
        "the command's Prefect client talked to whoever held its first port"


@pytest.mark.parametrize("users_retries", [None, "5"], ids=["acr-gc-default", "the-users-own"])
def test_a_prefect_api_busy_for_more_than_prefects_own_five_retries_does_not_fail_the_command(
        plan_args, prefect_api_url, tmp_path, users_retries):
    """Seen in a suite run on a loaded machine: `acr-gc run` exited 1 with 503 "Service
    Unavailable" on POST /flow_runs/ after Prefect's five retries (2 + 4 + ... + 32 s).
    The user's own PREFECT_CLIENT_MAX_RETRIES wins (5 here: the command then fails)."""
    upstream = urlsplit(prefect_api_url).netloc
    with PrefectApiProxy(upstream, busy=("POST", "/api/flow_runs/", 7)) as proxy:
        env = _env(tmp_path, PREFECT_API_URL=f"http://{proxy.endpoint}/api")
        if users_retries:
            env["PREFECT_CLIENT_MAX_RETRIES"] = users_retries
        done = subprocess.run([sys.executable, "-m", "acr_gc.cli", *plan_args], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
    attempts = proxy.requests.count(("POST", "/api/flow_runs/"))
    if users_retries:
        assert (done.returncode, attempts) == (1, int(users_retries) + 1), done.stderr[-2000:]
    else:
        assert proxy.answered_busy == 7, proxy.answered_busy
        assert done.returncode == 0, done.stderr[-3000:]
        assert attempts == 8
