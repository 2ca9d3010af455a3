"""``autovoice up``: a private Redis if needed, one worker per visible GPU (or one CPU worker), the studio.

Children are separate processes started with ``python -m autovoice`` (never forked after torch is
imported), each in its own session so a Ctrl-C reaches only this supervisor, which then stops them in
order: workers (they finish or requeue their job), the studio, and the private Redis last. Each child also
gets SIGTERM from the kernel if the supervisor itself dies, so none is left orphaned.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from workers.errors import WorkerError

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
WORKER_STOP_WAIT = 60.0      # a worker's stop grace plus time to requeue and deregister
STUDIO_STOP_WAIT = 15.0
MAX_RESTARTS = 5             # per child, within RESTART_WINDOW seconds
RESTART_WINDOW = 300.0


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the supervisor dies (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)
    signalled: bool = False

    def start(self) -> None:
        self.signalled = False
        self.proc = subprocess.Popen(self.argv, env=self.env, start_new_session=True, preexec_fn=_die_with_parent)
        log.info("started %s (pid %d)", self.name, self.proc.pid)
        print(f"autovoice up: {self.name} pid {self.proc.pid}", file=sys.stderr, flush=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> None:
        """One SIGTERM (a second would tell a worker to interrupt its job at once)."""
        if self.proc is not None and self.proc.poll() is None and not self.signalled:
            self.signalled = True
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, wait: float) -> None:
        """SIGTERM, wait, then SIGKILL; always reaps the process."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %d) did not stop in %.0f s; killing it", self.name, self.proc.pid, wait)
                self.proc.kill()
                self.proc.wait()
        print(f"autovoice up: stopped {self.name} (exit {self.proc.returncode})", file=sys.stderr, flush=True)


class Supervisor:
    def __init__(self, port: int, cpu: bool, data_dir: Path) -> None:
        self.port = port
        self.cpu = cpu
        self.data_dir = data_dir
        self.workers: list[Child] = []
        self.studio: Child | None = None
        self.redis = None
        self._stop = threading.Event()

    def _on_signal(self, signum: int, frame: object) -> None:
        print(f"autovoice up: {signal.Signals(signum).name}: stopping", file=sys.stderr, flush=True)
        self._stop.set()

    def _autovoice(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "autovoice", *args]

    def run(self) -> int:
        """Start everything, watch it, stop everything; returns the exit code."""
        from workers.hostinfo import visible_gpus

        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            url = os.environ.get("REDIS_URL")
            if not url:
                from workers.embedded import EmbeddedRedis

                self.redis = EmbeddedRedis(self.data_dir / "redis")
                url = self.redis.start()
                print(f"autovoice up: private Redis at {url} (pid {self.redis.pid})", file=sys.stderr, flush=True)
            env = {**os.environ, "REDIS_URL": url}
            gpus = [] if self.cpu else visible_gpus()
            devices = [("--gpu", str(g)) for g in gpus] or [("--cpu",)]
            for dev in devices:
                self.workers.append(Child(f"worker {' '.join(dev).lstrip('-')}",
                                          self._autovoice("worker", *dev, "--redis", url,
                                                          "--workers-per-host", str(len(devices))), env))
            for w in self.workers:
                w.start()
            if importlib.util.find_spec("autovoice.commands.studio") is None:
                raise WorkerError("cannot start the studio: this install has no `autovoice studio` command "
                                  "(autovoice.commands.studio is missing); workers and Redis were stopped")
            self.studio = Child("studio", self._autovoice("studio", "--redis", url, "--port", str(self.port)), env)
            self.studio.start()
            print(f"autovoice up: studio on http://localhost:{self.port} (Ctrl-C stops everything)",
                  file=sys.stderr, flush=True)
            return self._watch()
        finally:
            self.stop_all()
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _watch(self) -> int:
        while not self._stop.wait(0.5):
            if self.studio is not None and not self.studio.alive():
                code = self.studio.proc.returncode if self.studio.proc else -1
                raise WorkerError(f"the studio exited (status {code}); stopping everything")
            for w in self.workers:
                if not w.alive():
                    now = time.monotonic()
                    w.restarts = [t for t in w.restarts if now - t < RESTART_WINDOW] + [now]
                    if len(w.restarts) > MAX_RESTARTS:
                        raise WorkerError(f"{w.name} keeps exiting (last status {w.proc.returncode if w.proc else '?'})"
                                          "; stopping everything")
                    print(f"autovoice up: {w.name} exited (status {w.proc.returncode if w.proc else '?'}); "
                          "restarting it", file=sys.stderr, flush=True)
                    w.start()
        return 0

    def stop_all(self) -> None:
        """Workers first (each finishes or requeues its job), then the studio, then Redis."""
        for w in self.workers:
            w.terminate()
        for w in self.workers:
            w.stop(WORKER_STOP_WAIT)
        if self.studio is not None:
            self.studio.stop(STUDIO_STOP_WAIT)
        if self.redis is not None:
            self.redis.stop()
            print("autovoice up: stopped the private Redis", file=sys.stderr, flush=True)
            self.redis = None
