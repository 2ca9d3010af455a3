"""Process-wide state of a worker: config, loaded pipelines (kept across jobs), and the stop request.

A worker runs every job in its own process (no fork), so what is loaded here stays loaded: one
:class:`~engine.pipeline.Converter` per (backend, precision), dropped only when this host's engines are
rebuilt. Job functions reach it through :func:`current`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis

from workers import keys
from workers.hostinfo import HostInfo
from workers.settings import JobLimits, Timing, job_limits

if TYPE_CHECKING:
    from engine.config import Config
    from engine.pipeline import Converter

log = logging.getLogger(__name__)


class WorkerRuntime:
    """Everything a job function needs from the worker it runs in."""

    def __init__(self, conn: redis.Redis, cfg: Config, host: HostInfo, timing: Timing, worker_name: str,
                 default_backend: str = "auto", default_precision: str = "fp32") -> None:
        self.conn = conn
        self.cfg = cfg
        self.host = host
        self.timing = timing
        self.limits: JobLimits = job_limits(cfg)
        self.worker_name = worker_name
        self.default_backend = default_backend
        self.default_precision = default_precision
        self._converters: dict[tuple[str, str], Converter] = {}
        self._engines_version: bytes | None = None
        self._checkpoint_sha: str | None = None
        self._lock = threading.Lock()
        self._stop_at: float | None = None  # monotonic time after which a running job is interrupted
        self.lease_lost: str | None = None  # id of a running job the sweep gave to another worker

    # -- pipelines ------------------------------------------------------------------------------------------
    def converter(self, backend: str, precision: str, say: Callable[[str], None] | None = None) -> Converter:
        """The loaded pipeline for (backend, precision), loading it on first use."""
        from engine.pipeline import Converter
        from engine.runners import load_runners

        self._drop_stale_engines()
        key = (backend, precision)
        with self._lock:
            conv = self._converters.get(key)
            if conv is None:
                t0 = time.perf_counter()
                runners = load_runners(self.cfg, backend, precision, None, self.cfg.runtime.device)
                conv = self._converters[key] = Converter(self.cfg, runners)
                if runners.checkpoint is not None:
                    self._checkpoint_sha = runners.checkpoint.sha256  # the worker's config never changes
                if say:
                    say(f"loaded {backend}/{precision} pipeline in {time.perf_counter() - t0:.1f} s: "
                        + ", ".join(f"{c}={d}" for c, d in runners.describe().items()))
                if not runners.trained and say:
                    say("WARNING: the model checkpoint is UNTRAINED: the output will not sound like the target voice")
            elif say:
                say(f"using the loaded {backend}/{precision} pipeline")
            return conv

    def checkpoint_sha256(self) -> str:
        """The identity (sha256) of the model this worker serves, as its first loaded pipeline reported it:
        what an artifact's manifest must name for this worker to load it. ``""`` until a pipeline is loaded."""
        return self._checkpoint_sha or ""

    def loaded(self) -> dict[str, dict[str, str]]:
        """``{"backend/precision": {component: "backend/precision"}}`` of the pipelines in memory.

        Lock-free (the heartbeat calls it and must not wait for a pipeline that is loading).
        """
        return {f"{b}/{p}": c.runners.describe() for (b, p), c in list(self._converters.items())}

    def _drop_stale_engines(self) -> None:
        """Forget loaded pipelines once a build for this host's queue has finished since they were loaded."""
        try:
            version = self.conn.get(keys.engines_version(self.host.build_queue))
        except redis.exceptions.RedisError:
            return
        with self._lock:
            if self._engines_version is not None and version != self._engines_version and self._converters:
                log.info("engines were rebuilt for %s: reloading pipelines", self.host.build_queue)
                self._converters.clear()
            self._engines_version = version

    def engines_rebuilt(self) -> None:
        """Called after a build on this worker: bump the host's version so every worker here reloads."""
        self.conn.incr(keys.engines_version(self.host.build_queue))

    # -- stopping -------------------------------------------------------------------------------------------
    def request_stop(self, grace: float) -> None:
        """Let a running job finish for ``grace`` seconds; after that it is interrupted at its next chunk."""
        at = time.monotonic() + max(grace, 0.0)
        self._stop_at = at if self._stop_at is None else min(self._stop_at, at)

    def interrupt_due(self) -> bool:
        return self._stop_at is not None and time.monotonic() >= self._stop_at

    def describe(self) -> dict[str, Any]:
        return {"worker": self.worker_name, **self.host.as_dict()}


_current: WorkerRuntime | None = None


def install(runtime: WorkerRuntime) -> None:
    global _current
    _current = runtime


def current(conn: redis.Redis | None = None) -> WorkerRuntime:
    """This process's runtime; a job run by a plain RQ worker gets one built from the environment."""
    global _current
    if _current is None:
        if conn is None:
            from workers.errors import WorkerError

            raise WorkerError("no worker runtime in this process: run jobs with `autovoice worker`")
        from engine.config import load_config
        from workers.hostinfo import detect

        _current = WorkerRuntime(conn, load_config(), detect(None), Timing.from_env(), worker_name="rq")
    return _current
