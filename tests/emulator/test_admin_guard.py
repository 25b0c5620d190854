"""The emulator's admin API guards itself as a local development server should (issue 14 item 6).

* A POST must be ``Content-Type: application/json``: a web page can make a browser send
  ``text/plain`` (or form) POSTs to 127.0.0.1 across origins without a preflight, never JSON.
* Every admin request must name a loopback host (``Host: 127.0.0.1:…``, ``localhost``,
  ``[::1]``): a page whose name was rebound to 127.0.0.1 sends its own name.
* ``GET /_emulator/dump`` leaves the access key secrets out unless ``?secrets=true``; such
  a dump is refused by ``restore`` (HTTP and ``--restore``) with one line saying so.
* Bound to a non-loopback address, the emulator warns on stderr.

Real parts: the session emulator over HTTP (httpx), the CLI as a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from emulator_kit import AK, SECRET

ROOT = Path(__file__).resolve().parents[2]
DATASET = {
    "clock": "2024-06-01T00:00:00Z",
    "credentials": [{"access_key_id": AK, "access_key_secret": SECRET, "principal": "ops"}],
    "instances": [{"instance_id": "cri-guard", "name": "guard", "bucket": "guard-bucket", "namespaces": ["n"]}],
    "buckets": [{"name": "guard-bucket"}],
}


@pytest.fixture
def loaded(emulator):
    emulator.load(DATASET)
    return emulator


def _admin(emulator) -> httpx.Client:
    return httpx.Client(base_url=emulator.admin_url + "/", timeout=10, trust_env=False)


def test_a_post_that_is_not_json_is_refused_and_changes_nothing(loaded):
    with _admin(loaded) as admin:
        body = json.dumps({"fault_rate": 0.5})
        for headers in ({"content-type": "text/plain"}, {"content-type": "application/x-www-form-urlencoded"}, {}):
            answer = admin.post("faults", content=body, headers=headers)
            assert answer.status_code == 415 and "Content-Type: application/json" in answer.json()["error"]
        assert admin.post("reset", content=b"", headers={"content-type": "text/plain"}).status_code == 415
        assert loaded.truth()["faults"]["fault_rate"] == 0  # nothing was set
        assert admin.post("faults", json={"seed": 3}).status_code == 200  # JSON: answered
        assert admin.post("faults", content=body,
                          headers={"content-type": "application/json; charset=utf-8"}).json()["fault_rate"] == 0.5


def test_a_request_naming_another_host_is_refused(loaded):
    port = loaded.acr_endpoint.rsplit(":", 1)[1]
    with _admin(loaded) as admin:
        for host in ("evil.example", "evil.example:80", f"192.0.2.7:{port}", "127.0.0.1.evil.example"):
            assert admin.get("truth", headers={"host": host}).status_code == 403, host
            answer = admin.post("reset", json={}, headers={"host": host})
            assert answer.status_code == 403 and "loopback host" in answer.json()["error"], host
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "127.0.0.2", f"[::1]:{port}"):
            assert admin.get("truth", headers={"host": host}).status_code == 200, host


def test_dump_leaves_secrets_out_unless_asked_and_restore_says_it_needs_them(loaded, tmp_path):
    with _admin(loaded) as admin:
        plain = admin.get("dump")
        full = admin.get("dump", params={"secrets": "true"})
    assert plain.status_code == full.status_code == 200
    assert SECRET not in plain.text and plain.json()["secrets"] is False
    assert SECRET in full.text and full.json()["secrets"] is True
    with _admin(loaded) as admin:
        refused = admin.post("restore", json=plain.json())
    assert refused.status_code == 400, refused.text
    assert "taken without the access key secrets" in refused.json()["error"]
    assert "dump?secrets=true" in refused.json()["error"]

    path = tmp_path / "dump.json"
    path.write_text(plain.text, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "acr_gc.cli", "emulator", "serve", "--restore", str(path),
                           "--acr-port", "0", "--oss-port", "0"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "taken without the access key secrets" in done.stderr and SECRET not in done.stderr


def test_serving_on_a_non_loopback_address_warns_on_stderr(tmp_path):
    dataset = tmp_path / "dataset.json"
    dataset.write_text(json.dumps(DATASET), encoding="utf-8")
    child = subprocess.Popen([sys.executable, "-m", "acr_gc.cli", "emulator", "serve", "--dataset", str(dataset),
                              "--host", "0.0.0.0", "--acr-port", "0", "--oss-port", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        ready = json.loads(child.stdout.readline())
        assert ready["acr_endpoint"].startswith("0.0.0.0:")
    finally:
        child.terminate()
        _, stderr = child.communicate(timeout=30)
    assert "warning: listening on 0.0.0.0, not a loopback address" in stderr, stderr
