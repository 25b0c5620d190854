"""Where a command's CPU goes, by kind of process — written for the test suite (issue 14 item 5).

    .venv/bin/python benchmarks/suite_census.py [--interval 0.25] [--jsonl FILE] -- bash scripts/test.sh

The suite is CPU-bound on 2 cores (wall ≈ CPU / 1.85), so its wall time is the CPU of every
process it starts: pytest's workers, the session's Prefect test servers, ~150 CLI commands and
their temporary Prefect servers, emulators, Chromium, PostgreSQL. Many of them are killed
(SIGTERM, SIGKILL) rather than exit, so a per-process log written at exit misses them, and a
per-test ``getrusage`` charges a server to whichever test happened to reap it.

This census runs the command as a child of a Linux *child subreaper*: every process the
command starts stays in its tree, orphans included (a server whose parent died is reparented
here, not to init). It reads ``/proc/<pid>/stat`` of the whole tree every ``--interval``
seconds and keeps each process's last CPU (user + system), and reaps the orphans, so the
exact total (``getrusage(RUSAGE_CHILDREN)``) covers every process; the table's "not seen"
row is what lived and died between two readings (each process's last interval, and
processes shorter than one). Prints the table by kind, then one JSON line of totals;
``--jsonl`` writes one row per process.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import pandas as pd

PR_SET_CHILD_SUBREAPER = 36
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
CLI = re.compile(r"(?:acr_gc\.cli|acr_gc/cli\.py|/acr-gc)\s+([a-z][\w-]*)")
KINDS = tuple((re.compile(pattern), kind) for pattern, kind in (  # the first that matches the command line
    (r"exec\(eval\(sys\.stdin\.readline\(\)\)\)", "pytest-xdist worker"),
    (r" -m prefect server start", "`prefect server start` (a test's own server)"),
    (r"parent = os\.getppid\(\)", "CPU hog (the start-up-under-load test)"),
    (r"^\S*(chromium|/exe)\b", "Chromium"),
    (r"^(\S*/)?(postgres|initdb|pg_ctl)\b", "PostgreSQL"),
    (r" -m pip |pip-runner", "setup (pip)"),
    (r" -m pytest", "pytest"),
))


@dataclass
class Process:
    pid: int
    ppid: int
    command: str
    cpu_s: float
    kind: str = ""
    seen_from_s: float = 0.0  # since the census started: when a reading first saw it …
    seen_until_s: float = 0.0  # … and last saw it (an idle server's lifetime tells its idle cost)


def kind_of(command: str, parent_kind: str) -> str:
    """A process's kind from its command line; a Prefect API server by who started it."""
    if "prefect.server.api.server:create_app" in command:
        if parent_kind.startswith("acr-gc"):
            return "temporary Prefect server of an acr-gc command"
        return "Prefect server of a test (prefect_test_harness)"
    if (match := CLI.search(command)) is not None:
        return "emulator process" if match.group(1) == "emulator" else f"acr-gc {match.group(1)}"
    for pattern, kind in KINDS:
        if pattern.search(command):
            return kind
    return "other: " + os.path.basename(command.split(" ", 1)[0] or "?")


def _stat(pid: int) -> tuple[int, float, int] | None:
    """(ppid, CPU seconds, start time in ticks) of a live or zombie process, None if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS_PER_S, int(fields[19])


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()[:400]
    except OSError:
        return ""


class Census:
    def __init__(self) -> None:
        self.me = os.getpid()
        self.started = time.monotonic()
        self.seen: dict[tuple[int, int], Process] = {}  # by (pid, start time): pids are reused

    def read(self) -> list[Process]:
        """Read the CPU of every process in this one's tree; return those alive (zombies too)."""
        stats = {int(name): stat for name in os.listdir("/proc") if name.isdigit()
                 and (stat := _stat(int(name))) is not None}
        live: dict[int, Process] = {}
        now = round(time.monotonic() - self.started, 2)
        for pid in sorted(stats, key=lambda pid: stats[pid][2]):  # parents start before children
            ppid, cpu, started = stats[pid]
            if ppid != self.me and ppid not in live:
                continue
            process = self.seen.get((pid, started))
            if process is None:
                process = self.seen[(pid, started)] = Process(pid, ppid, "", cpu, seen_from_s=now)
            process.cpu_s, process.seen_until_s = cpu, now
            if not process.command:  # empty between fork and exec: read again next time
                process.command = _command_line(pid)
                parent = live.get(ppid)
                process.kind = kind_of(process.command, parent.kind if parent else "")
            live[pid] = process
        return list(live.values())


def _reap(main_pid: int) -> int | None:
    """Reap every child that has ended (orphans land here); the main command's status if it ended."""
    status = None
    while True:
        try:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if pid == 0:
            return status
        if pid == main_pid:
            status = os.waitstatus_to_exitcode(wait_status)


def run(argv: list[str], interval: float, linger_s: float) -> tuple[Census, int, float, float, list[Process]]:
    """Run `argv` under the census: (census, exit code, wall s, exact CPU s of all, left running)."""
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit("suite_census: this kernel would not make the census a child subreaper")
    census = Census()
    started = time.monotonic()
    main = subprocess.Popen(argv)
    exit_code = None
    while exit_code is None:
        census.read()  # before reaping: a zombie's /proc entry still holds its final CPU
        exit_code = _reap(main.pid)
        time.sleep(interval)
    main.returncode = exit_code  # reaped here, not by Popen
    wall = time.monotonic() - started
    deadline = time.monotonic() + linger_s  # what the command left behind gets this long to end
    while census.read() and time.monotonic() < deadline:
        _reap(main.pid)
        time.sleep(interval)
    _reap(main.pid)
    left = census.read()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return census, exit_code, wall, usage.ru_utime + usage.ru_stime, left


def table(processes: list[Process], total_cpu_s: float) -> pd.DataFrame:
    frame = pd.DataFrame([asdict(p) for p in processes], columns=list(Process.__dataclass_fields__))
    by_kind = (frame.groupby("kind").agg(processes=("pid", "size"), cpu_s=("cpu_s", "sum"))
               .sort_values("cpu_s", ascending=False))
    by_kind.loc["not seen (between two readings)"] = [0, max(0.0, total_cpu_s - by_kind["cpu_s"].sum())]
    by_kind["share_pct"] = 100 * by_kind["cpu_s"] / total_cpu_s if total_cpu_s else 0.0
    return by_kind.round({"cpu_s": 1, "share_pct": 1})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between readings of /proc")
    parser.add_argument("--linger", type=float, default=30.0,
                        help="seconds to wait for what the command left running before reporting it")
    parser.add_argument("--jsonl", help="write one JSON row per process here")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the command to run")
    args = parser.parse_args()
    argv = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not argv:
        parser.error("no command given (put it after --)")
    census, exit_code, wall, total_cpu, left = run(argv, args.interval, args.linger)
    processes = list(census.seen.values())
    if args.jsonl:
        with open(args.jsonl, "w", encoding="utf-8") as out:
            out.writelines(json.dumps(asdict(p)) + "\n" for p in processes)
    with pd.option_context("display.width", 200, "display.max_colwidth", 60, "display.max_rows", 100):
        print(table(processes, total_cpu), file=sys.stderr)
    print(json.dumps({"exit_code": exit_code, "wall_s": round(wall, 1), "cpu_s": round(total_cpu, 1),
                      "cpu_per_wall": round(total_cpu / wall, 2) if wall else None, "processes": len(processes),
                      "left_running": [f"{p.pid} {p.command[:80]}" for p in left]}))
    sys.exit(exit_code)


if __name__ == "__main__":
    main()
