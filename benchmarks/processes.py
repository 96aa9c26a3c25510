"""Child processes the harness starts, watches and always stops.

A child writes JSON lines (one object a line) on one of its streams; a reader thread parses them as they
arrive and notes, with each, the wall-clock time and the child's CPU seconds so far (from /proc). Waiting is
always for a condition on those lines, with a deadline — never a fixed sleep. Stopping reaps the child with
`wait4`, which gives its total CPU time and peak memory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from benchmarks.broker import BenchError

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TAIL_LINES = 15


@dataclass(frozen=True, slots=True, kw_only=True)
class Line:
    received: float  # time.time() when the harness read the line
    cpu_s: float | None  # the child's user + system CPU seconds at that moment
    system_busy_s: float | None  # the whole machine's busy CPU seconds at that moment
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Exit:
    code: int | None  # None: could not be reaped (it was killed and left to init)
    cpu_s: float | None  # user + system seconds over the whole life of the child
    max_rss_kib: int | None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live process (all its threads), from /proc/<pid>/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: fields 14 and 15


def system_busy_seconds() -> float | None:
    """CPU seconds all cores have spent busy since boot (user, nice, system, irq, softirq, steal)."""
    try:
        with Path("/proc/stat").open() as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) and friends of a live process, in KiB, from /proc/<pid>/status."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in {"VmRSS", "VmHWM", "RssAnon", "RssFile"}:
                out[name] = int(value.split()[0])
    except OSError:
        pass
    return out


class ChildProcess:
    """One child, its parsed JSON lines, and its raw output in a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        cwd: Path,
        log_path: Path,
        json_stream: Literal["stdout", "stderr"],
    ) -> None:
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = log_path.open("wb")
        self._cond = threading.Condition()
        self._lines: list[Line] = []
        self._tail: list[str] = []
        self._eof = threading.Event()
        self.exit: Exit | None = None
        pipe, other = (
            (subprocess.PIPE, self._log) if json_stream == "stdout" else (self._log, subprocess.PIPE)
        )
        self.started = time.time()
        # A session of its own: a Ctrl-C at the terminal reaches the harness, which stops its children itself.
        self.popen = subprocess.Popen(  # the argv is built by the harness, never from input
            list(argv), stdout=pipe, stderr=other, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
            start_new_session=True,
        )  # fmt: skip
        self.pid = self.popen.pid
        stream = self.popen.stdout if json_stream == "stdout" else self.popen.stderr
        assert stream is not None
        self._reader = threading.Thread(target=self._read, args=(stream,), name=f"read-{name}", daemon=True)
        self._reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        try:
            for raw in stream:
                received = time.time()
                cpu, busy = cpu_seconds(self.pid), system_busy_seconds()
                self._log.write(raw)
                try:
                    fields = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    fields = None
                with self._cond:
                    self._tail = [*self._tail[-(TAIL_LINES - 1) :], raw.decode(errors="replace").rstrip()]
                    if isinstance(fields, dict):
                        self._lines.append(
                            Line(received=received, cpu_s=cpu, system_busy_s=busy, fields=fields)
                        )
                    self._cond.notify_all()
        finally:
            self._log.close()  # the reader owns the log file
            self._eof.set()
            with self._cond:
                self._cond.notify_all()

    # ---- watching --------------------------------------------------------------------------------

    def lines(self) -> list[Line]:
        with self._cond:
            return list(self._lines)

    def tail(self) -> str:
        with self._cond:
            return "\n".join(self._tail)

    @property
    def alive(self) -> bool:
        """Still running? (Reaps it with `wait4` when it has exited, keeping its resource usage.)"""
        if self.exit is None:
            self.exit = self._reap(0.0)
        return self.exit is None

    def wait_for(
        self,
        predicate: Callable[[Line], bool],
        *,
        what: str,
        timeout: float,
        progress: Callable[[Line], float | None] | None = None,
        stall_s: float | None = None,
        start: int = 0,
    ) -> Line:
        """The first line (from index `start`) satisfying `predicate`.

        Raises BenchError when the deadline passes, when the child exits first, or — with `progress` and
        `stall_s` — when the progress figure of its lines has not grown for `stall_s` seconds.
        """
        deadline = time.monotonic() + timeout
        best, best_at = -1.0, time.monotonic()
        index = start
        with self._cond:
            while True:
                while index < len(self._lines):
                    line = self._lines[index]
                    index += 1
                    if predicate(line):
                        return line
                    if progress is not None and (value := progress(line)) is not None and value > best:
                        best, best_at = value, time.monotonic()
                now = time.monotonic()
                if self._eof.is_set():
                    raise BenchError(f"{self.name} exited while waiting for {what}:\n{self.tail_unlocked()}")
                if now >= deadline:
                    raise BenchError(
                        f"{self.name}: no {what} within {timeout:.0f} s:\n{self.tail_unlocked()}"
                    )
                if stall_s is not None and progress is not None and now - best_at > stall_s:
                    raise BenchError(
                        f"{self.name}: no progress towards {what} for {stall_s:.0f} s:\n"
                        + self.tail_unlocked()
                    )
                self._cond.wait(min(deadline - now, 1.0))

    def tail_unlocked(self) -> str:
        return "\n".join(self._tail)

    def memory_kib(self) -> dict[str, int]:
        return memory_kib(self.pid)

    def cpu_seconds(self) -> float | None:
        return cpu_seconds(self.pid)

    # ---- stopping --------------------------------------------------------------------------------

    def stop(self, *, timeout: float = 60.0, sig: signal.Signals = signal.SIGTERM) -> Exit:
        """Send `sig`, wait up to `timeout` for the child to exit (then SIGKILL it) and reap it."""
        if not self.alive:
            assert self.exit is not None
            self._close_log()
            return self.exit
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)
        exit_ = self._reap(timeout)
        if exit_ is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            exit_ = self._reap(10.0) or Exit(code=None, cpu_s=None, max_rss_kib=None)
        self.exit = exit_
        self._close_log()
        return exit_

    def _close_log(self) -> None:
        """Let the reader finish the log (the child's output ends when the child and its children have)."""
        self._eof.wait(5.0)

    def wait(self, *, timeout: float) -> Exit:
        """Wait for the child to exit by itself; raises BenchError (and kills it) past the deadline."""
        exit_ = self.exit or self._reap(timeout)
        if exit_ is None:
            self.stop(timeout=0.0, sig=signal.SIGKILL)
            raise BenchError(f"{self.name} did not finish within {timeout:.0f} s:\n{self.tail()}")
        self.exit = exit_
        self._close_log()
        return exit_

    def _reap(self, timeout: float) -> Exit | None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            except ChildProcessError:
                return Exit(code=self.popen.returncode, cpu_s=None, max_rss_kib=None)
            if pid == self.pid:
                code = os.waitstatus_to_exitcode(status)
                self.popen.returncode = code  # reaped here: Popen must not wait for it again
                return Exit(code=code, cpu_s=usage.ru_utime + usage.ru_stime, max_rss_kib=usage.ru_maxrss)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)  # polling for the exit, bounded by the deadline


class Children:
    """Every child of one measurement; `stop_all` leaves none running."""

    def __init__(self, log_dir: Path, cwd: Path) -> None:
        self.log_dir = log_dir
        self.cwd = cwd
        self.running: list[ChildProcess] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        json_stream: Literal["stdout", "stderr"],
    ) -> ChildProcess:
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        child = ChildProcess(
            name,
            argv,
            env=full_env,
            cwd=self.cwd,
            log_path=self.log_dir / f"{name}.log",
            json_stream=json_stream,
        )
        self.running.append(child)
        return child

    def stop_all(self) -> None:
        for child in self.running:
            if child.exit is None:
                child.stop(timeout=15.0)
        self.running.clear()
