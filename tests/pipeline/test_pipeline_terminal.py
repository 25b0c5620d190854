"""``acr-gc run`` at a terminal and without one (issue 15 items 1 and 3): the y/N
approval on a pseudo-terminal (Python's ``pty``), ``--approve``, no terminal at all, and
the progress bars — a ``rich`` bar on the terminal that reaches 100 % for the GC watch,
plain lines with no control characters when the output is a pipe. The run folder stays
the last line of standard output (DESIGN section 10).

Real parts: the CLI as a subprocess on the session's Prefect server and the session's
emulator, loaded with the hand-worked cri-run (7 of 17 tags expired).
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from pipeline_support import (
    RUN_EXPIRED,
    RUN_RETAINED,
    ROOT,
    cli_args,
    cli_env,
    cloud_state,
    config_dict,
    dataset,
    run_cli,
    summary_of,
    write_config,
)

pytestmark = pytest.mark.slow

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # anything but \t and \n


def _config_file(emulator, tmp_path: Path) -> Path:
    config = config_dict((emulator.acr_endpoint, emulator.oss_endpoint), tmp_path, "cri-run", "cri-run-storage",
                         approval={"required": True, "timeout": 300})
    return write_config(config, tmp_path / "config.yaml")


def _on_pty(args: list[str], env: dict, answer: str | None, timeout: float = 300) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdin/stdout/stderr; type ``answer`` at the
    y/N question. Returns (exit code, everything the terminal showed)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    process = subprocess.Popen(cli_args(*args), env={**env, "TERM": "xterm-256color"}, cwd=ROOT,
                               stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    shown, answered, deadline = b"", False, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            if answer is not None and not answered and b"[y/N]" in shown:
                os.write(master, answer.encode() + b"\n")
                answered = True
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    return code, shown.decode("utf-8", errors="replace")


def _last_line(text: str) -> str:
    return [line for line in ANSI.sub("", text).replace("\r", "\n").splitlines() if line.strip()][-1].strip()


def _folder(tmp_path: Path) -> Path:
    (folder,) = [p for p in (tmp_path / "out" / "cri-run").iterdir() if p.is_dir()]
    return folder


def test_terminal_yes_runs_with_a_gc_progress_bar_reaching_100(emulator, prefect_api_url, tmp_path):
    emulator.load(dataset())
    code, shown = _on_pty(["run", "--config", str(_config_file(emulator, tmp_path))], cli_env(prefect_api_url), "y")
    plain = ANSI.sub("", shown)
    assert code == 0, shown[-3000:]
    assert f"tags to delete: {len(RUN_EXPIRED)} of 17" in plain  # the headline, before the question
    assert "Approve this plan? [y/N]" in plain
    # rich redraws the bar in place; some frame of the GC bar shows 7/7 and 100%.
    frames = plain.replace("\r", "\n").splitlines()
    assert any(re.search(rf"GC\b.*{len(RUN_EXPIRED)}/{len(RUN_EXPIRED)}.*100%", f) for f in frames), plain[-3000:]
    assert any(re.search(r"inventory\b.*4/4.*100%", f) for f in frames), plain[-3000:]
    folder = _folder(tmp_path)
    assert _last_line(shown) == str(folder)
    assert summary_of(folder)["state"] == "GC_DONE"
    assert emulator.truth()["instances"]["cri-run"]["tags"] == RUN_RETAINED


def test_terminal_no_rejects_and_changes_nothing(emulator, prefect_api_url, tmp_path):
    emulator.load(dataset())
    before = cloud_state(emulator.truth())
    code, shown = _on_pty(["run", "--config", str(_config_file(emulator, tmp_path))], cli_env(prefect_api_url), "n")
    assert code == 3, shown[-3000:]
    folder = _folder(tmp_path)
    assert summary_of(folder)["state"] == "REJECTED"
    assert _last_line(shown) == str(folder)
    assert cloud_state(emulator.truth()) == before


def test_no_terminal_and_no_approve_is_rejected_at_once(emulator, prefect_api_url, tmp_path):
    emulator.load(dataset())
    before = cloud_state(emulator.truth())
    result = run_cli(["run", "--config", str(_config_file(emulator, tmp_path))], cli_env(prefect_api_url))
    assert result.returncode == 3, result.stderr[-3000:]
    folder = _folder(tmp_path)
    assert summary_of(folder)["state"] == "REJECTED"
    lines = result.stdout.splitlines()
    assert lines[-1] == str(folder)
    (state_line,) = [line for line in lines if line.startswith("state: REJECTED")]
    assert "no terminal to ask and no --approve" in state_line
    assert cloud_state(emulator.truth()) == before


def test_approve_without_a_terminal_prints_plain_progress_lines(emulator, prefect_api_url, tmp_path):
    emulator.load(dataset())
    result = subprocess.run(cli_args("run", "--config", str(_config_file(emulator, tmp_path)), "--approve"),
                            env=cli_env(prefect_api_url), cwd=ROOT, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for stream in (result.stdout, result.stderr):
        assert not CONTROL.search(stream), repr(CONTROL.search(stream))
        assert "\x1b" not in stream
    # Progress beside the logs on stderr; stdout is the three result lines and the folder.
    progress = result.stderr.splitlines()
    assert f"GC: {len(RUN_EXPIRED)}/{len(RUN_EXPIRED)} tags deleted (100%)" in progress
    assert "inventory: 4/4 repositories listed (100%)" in progress
    lines = result.stdout.splitlines()
    folder = _folder(tmp_path)
    assert len(lines) == 4 and lines[0].startswith("state: GC_DONE") and lines[-1] == str(folder), lines
    assert summary_of(folder)["state"] == "GC_DONE"
    assert emulator.truth()["instances"]["cri-run"]["tags"] == RUN_RETAINED

    from acr_gc.ledger import Ledger
    from acr_gc.ledger.models import Approval

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    with ledger.session() as session:
        row = session.get(Approval, folder.name)
        assert (row.approved, row.via) == (True, "--approve")
    ledger.dispose()
