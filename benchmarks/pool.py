"""Throughput of the job queue: a real ``redis-server``, N ``autovoice worker --cpu`` processes, J jobs.

Each worker is started the way an operator starts one (``--workers-per-host N``, so the cores are shared
out, not oversubscribed) and preloads its pipeline; the clock starts at the first submission, once every
worker beats, and stops when the last job has finished.
"""

from __future__ import annotations

import dataclasses
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

WORKER_START_TIMEOUT = 300.0
REDIS_START_TIMEOUT = 20.0
VOICE_NAME = "bench"
# Set by the benchmark for its own measurement processes; a pool worker must share the cores out itself.
STRIPPED_ENV = ("AUTOVOICE__RUNTIME__THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "REDIS_URL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unavailable_reason() -> str | None:
    """Why the pool cannot be measured here, or None."""
    try:
        import redis  # noqa: F401
        import rq  # noqa: F401

        import workers.enqueue  # noqa: F401
    except ImportError as exc:
        return f"the job queue is not installed ({exc.name}); install the worker extra"
    if shutil.which("redis-server") is None:
        return "redis-server is not on PATH (apt-get install redis-server)"
    return None


class RedisProcess:
    """A private ``redis-server`` on a free loopback port, without persistence."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> RedisProcess:
        import redis

        exe = shutil.which("redis-server") or "redis-server"
        with open(self.folder / "redis.log", "wb") as log:
            self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                                          str(self.folder), "--save", "", "--appendonly", "no",
                                          "--protected-mode", "no"], stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + REDIS_START_TIMEOUT
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.__exit__()
                    raise RuntimeError(f"redis-server did not start: {(self.folder / 'redis.log').read_text()}") \
                        from None
                time.sleep(0.05)
        client.close()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Workers:
    """``n`` worker subprocesses; leaving the block stops every one of them (SIGTERM, then SIGKILL)."""

    def __init__(self, n: int, url: str, env: dict[str, str], folder: Path, backend: str, precision: str) -> None:
        self.n, self.url, self.env, self.folder = n, url, env, folder
        self.backend, self.precision = backend, precision
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Workers:
        for i in range(self.n):
            with open(self.folder / f"worker_{self.n}_{i}.log", "wb") as log:
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "autovoice", "worker", "--cpu", "--redis", self.url,
                     "--backend", self.backend, "--precision", self.precision, "--workers-per-host", str(self.n),
                     "--name", f"bench-{self.n}-{i}"],
                    cwd=self.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT))
        return self

    def wait_alive(self, conn: Any) -> None:
        from workers.status import live_workers

        pids = {p.pid for p in self.procs}
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while time.monotonic() < deadline:
            if len([w for w in live_workers(conn) if w.get("pid") in pids]) >= self.n:
                return
            for i, p in enumerate(self.procs):
                if p.poll() is not None:
                    tail = (self.folder / f"worker_{self.n}_{i}.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"worker {i} exited with {p.returncode} before it was ready:\n{tail}")
            time.sleep(0.2)
        raise RuntimeError(f"{self.n} worker(s) did not come up within {WORKER_START_TIMEOUT:.0f} s")

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        for p in self.procs:
            try:
                p.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def measure_pool(input_path: Path, voice: Any, env: dict[str, str], *, worker_counts: list[int], jobs: int,
                 backend: str, precision: str, say: Callable[[str], None]) -> dict[str, Any]:
    """Throughput with each worker count in ``worker_counts``: ``jobs`` conversions of ``input_path``.

    Returns:
        ``{"backend", "precision", "jobs", "input_seconds", "rows": [{"workers", "threads_per_worker",
        "wall_seconds", "audio_seconds_per_second", "jobs_per_minute", "mean_job_seconds",
        "mean_wait_seconds", "failed"}]}``.
    """
    from benchmarks.machine import cores
    from workers.connection import connect
    from workers.enqueue import submit_convert, wait
    from workers.settings import job_limits
    from workers.voices import save_profile

    env = {k: v for k, v in env.items() if k not in STRIPPED_ENV}
    rows = []
    input_seconds = None
    with tempfile.TemporaryDirectory(prefix="autovoice-bench-pool-") as tmp, RedisProcess(Path(tmp)) as server:
        conn = connect(server.url)
        limits = job_limits()
        save_profile(conn, dataclasses.replace(voice, name=VOICE_NAME), [], limits.max_blob_bytes)
        for n in worker_counts:
            say(f"pool: {n} worker(s), {jobs} job(s) of {input_path.name} on {backend}/{precision}")
            folder = Path(tmp) / f"workers_{n}"
            folder.mkdir()
            with Workers(n, server.url, {**env, "AUTOVOICE_DATA_DIR": str(folder)}, folder, backend,
                         precision) as pool:
                pool.wait_alive(conn)
                t0 = time.perf_counter()
                ids = [submit_convert(conn, input_path, VOICE_NAME, backend=backend, precision=precision,
                                      limits=limits) for _ in range(jobs)]
                records = [wait(conn, job_id, timeout=3600) for job_id in ids]
                wall = time.perf_counter() - t0
            done = [r for r in records if r["status"] == "finished"]
            failed = [r.get("error") for r in records if r["status"] != "finished"]
            audio = sum(float(r["result"]["input_seconds"]) for r in done)
            input_seconds = input_seconds or (float(done[0]["result"]["input_seconds"]) if done else None)
            rows.append({"workers": n, "threads_per_worker": max(1, cores() // n), "jobs": jobs,
                         "wall_seconds": round(wall, 3),
                         "audio_seconds_per_second": round(audio / wall, 3) if done else None,
                         "jobs_per_minute": round(60.0 * len(done) / wall, 2),
                         "mean_job_seconds": _mean([r["run_seconds"] for r in done]),
                         "mean_wait_seconds": _mean([r["wait_seconds"] for r in done]),
                         "failed": failed})
            say(f"pool: {n} worker(s): {rows[-1]['audio_seconds_per_second']} audio s per s "
                f"({rows[-1]['jobs_per_minute']} jobs/min){'; FAILED: ' + str(failed[0]) if failed else ''}")
        conn.close()
    return {"backend": backend, "precision": precision, "jobs": jobs, "input_seconds": input_seconds, "rows": rows}
