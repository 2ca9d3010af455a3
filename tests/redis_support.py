"""Helpers for the job-queue tests: a real Redis server, real worker processes, job submission.

The Redis server is Debian's ``redis-server`` on a free loopback port in a temporary folder (appendonly
on, so it can be restarted mid-run without losing data). Workers are ``python -m autovoice worker --cpu``
subprocesses with short heartbeat, lease and sweep intervals. The fixtures built on these live in
:mod:`redis_fixtures` (a test module loads them with ``pytest_plugins = ["redis_fixtures"]``).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

REDIS_SERVER = "/usr/bin/redis-server"
REPO_ROOT = Path(__file__).resolve().parent.parent
WORKER_START_TIMEOUT = 300.0  # seconds; ~10 on an idle 2-core machine, far more on a loaded one
# Fast failure detection for tests: a dead worker's job is noticed within ~6 s.
FAST_TIMING = {"AUTOVOICE_WORKER_HEARTBEAT": "0.5", "AUTOVOICE_WORKER_LEASE": "5", "AUTOVOICE_SWEEP_INTERVAL": "0.5",
               "AUTOVOICE_STOP_GRACE": "20"}
# 1-second chunks, so a few seconds of audio make a job with several chunks (cancel and kill points).
SHORT_CHUNKS = {"AUTOVOICE__INFERENCE__CHUNK_SECONDS": "1", "AUTOVOICE__INFERENCE__OVERLAP_SECONDS": "0.2"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    """One ``redis-server`` process that can be restarted on the same port and data folder."""

    folder: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    durable: bool = True  # appendonly with fsync on every write: survives restart(); False keeps nothing

    @property
    def url(self) -> str:
        return self.db_url(0)

    def db_url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.durable else ["--appendonly", "no"]
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115 - the server owns it until it exits
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             *persistence, "--save", "", "--daemonize", "no", "--protected-mode", "no"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    log_text = (self.folder / "redis.log").read_text()
                    raise RuntimeError(f"redis-server did not start: {log_text}") from None
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        """SHUTDOWN (which writes the AOF) and wait for the process."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            redis.Redis(port=self.port).shutdown()
        except redis.exceptions.ConnectionError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self, down_for: float = 0.5) -> float:
        """Stop, stay down ``down_for`` seconds, start again; returns how long it was unreachable."""
        t0 = time.monotonic()
        self.stop()
        time.sleep(down_for)
        self.start()
        return time.monotonic() - t0





class WorkerPool:
    """Worker subprocesses started for one test (or module); :meth:`close` leaves none behind."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self, n: int = 1, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> list[int]:
        """Start ``n`` CPU workers (torch backend); returns their indices in :attr:`procs`."""
        out = []
        for _ in range(n):
            path = self.log_dir / f"worker_{len(self.procs)}.log"
            with open(path, "wb") as log:
                proc = subprocess.Popen([sys.executable, "-m", "autovoice", "worker", "--cpu", "--backend", "torch",
                                         "--workers-per-host", "2", *args], cwd=self.log_dir,
                                        env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT)
            self.procs.append(proc)
            self.logs.append(path)
            out.append(len(self.procs) - 1)
        return out

    def wait_alive(self, conn: redis.Redis, n: int, timeout: float = WORKER_START_TIMEOUT) -> list[dict[str, Any]]:
        """Wait until ``n`` workers beat (by pid among this pool's live processes)."""
        from workers.status import live_workers

        deadline = time.monotonic() + timeout
        pids = {p.pid for p in self.procs if p.poll() is None}
        while time.monotonic() < deadline:
            alive = [w for w in live_workers(conn) if w.get("pid") in pids]
            if len(alive) >= n:
                return alive
            dead = [i for i, p in enumerate(self.procs) if p.poll() is not None and p.pid in pids]
            if dead:
                raise AssertionError(f"worker exited early:\n{self.tail(dead[0])}")
            time.sleep(0.1)
        beating = {w.get("pid") for w in live_workers(conn)}
        stuck = [i for i, p in enumerate(self.procs) if p.poll() is None and p.pid not in beating]
        for i in stuck:  # PYTHONFAULTHANDLER: SIGABRT makes the worker print every thread's stack
            self.procs[i].send_signal(signal.SIGABRT)
            self.procs[i].wait(timeout=10)
        tails = "\n".join(f"--- worker {i}:\n{self.tail(i)}" for i in stuck)
        raise AssertionError(f"{n} worker(s) did not come up in {timeout:.0f} s:\n{tails}")

    def tail(self, i: int, lines: int = 40) -> str:
        text = self.logs[i].read_text(errors="replace") if self.logs else ""
        return "\n".join(text.splitlines()[-lines:])

    def signal(self, i: int, sig: int) -> None:
        self.procs[i].send_signal(sig)

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for p in self.procs:
            try:
                p.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()




def limits(**overrides: Any) -> Any:
    """Client-side job limits for tests (the workers use the config's)."""
    from workers.settings import JobLimits

    base: dict[str, Any] = {"retention_seconds": 3600, "max_blob_mb": 50, "max_queue_length": 1000,
                            "timeouts": {"convert": 300, "create_voice": 300, "calibrate": 300,
                                         "build_engines": 300}}
    return JobLimits(**(base | overrides))


def submit(conn: redis.Redis, path: Path, voice: str = "testvoice", options: dict[str, Any] | None = None,
           **kw: Any) -> str:
    from workers.enqueue import submit_convert

    return submit_convert(conn, path, voice, options=options, backend="torch", limits=kw.pop("lim", None) or limits(),
                          **kw)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def final_event(conn: redis.Redis, job_id: str, timeout: float = 10.0) -> Any:
    """The job's ``end`` log event. A worker records the final status first and the event right after, so a
    test that has just seen the status may have to wait a moment for the event."""
    from workers import logs

    return wait_until(lambda: logs.final_event(conn, job_id), timeout, f"the end event of job {job_id}")


def tone_file(path: Path, seconds: float, sr: int = 16000, f0: float = 220.0) -> Path:
    """A harmonic tone with vibrato and a slow swell (voiced throughout)."""
    import numpy as np
    import soundfile as sf

    t = np.arange(int(round(seconds * sr))) / sr
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))) / sr
    x = sum(0.3 / k * np.sin(k * phase) for k in range(1, 12)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    sf.write(str(path), (0.3 * x).astype(np.float32), sr, subtype="PCM_16")
    return path
