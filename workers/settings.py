"""Queue settings: the ``jobs`` section of the config, and the worker's timing knobs from the environment.

Timing knobs (seconds) are environment variables so tests and operators can shorten them without a
config file: ``AUTOVOICE_WORKER_HEARTBEAT`` (how often a worker refreshes its heartbeat and its running
job's lease; default 5), ``AUTOVOICE_WORKER_LEASE`` (how long a running job's lease lasts without a
refresh; default 30), ``AUTOVOICE_SWEEP_INTERVAL`` (how often a worker looks for jobs whose worker died;
default 10) and ``AUTOVOICE_STOP_GRACE`` (how long a worker told to stop lets its running job finish
before requeueing it; default 10). A dead worker's job is noticed within lease + sweep interval.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

MAX_ABANDONED_RETRIES = 1  # a job whose worker dies is run once more, on another worker; the next death fails it


def _env_float(name: str, default: float, environ: dict[str, str] | None = None) -> float:
    env = os.environ if environ is None else environ
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        from workers.errors import WorkerError

        raise WorkerError(f"{name} must be a number of seconds, not {raw!r}") from None
    if value <= 0:
        from workers.errors import WorkerError

        raise WorkerError(f"{name} must be positive, not {raw!r}")
    return value


@dataclass(frozen=True)
class Timing:
    heartbeat: float = 5.0
    lease: float = 30.0
    sweep: float = 10.0
    stop_grace: float = 10.0

    @property
    def lease_ttl(self) -> int:
        """The lease as RQ stores it (whole seconds, at least two heartbeats)."""
        return max(int(round(self.lease)), int(2 * self.heartbeat) + 1, 1)

    @property
    def worker_ttl(self) -> int:
        """TTL of a worker's heartbeat hash: it outlives a lease, so a job is never taken from a live worker
        whose heartbeat was merely late (a native call holding the GIL delays the heartbeat thread)."""
        return max(self.lease_ttl, int(3 * self.heartbeat) + 1, 3)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Timing:
        return cls(heartbeat=_env_float("AUTOVOICE_WORKER_HEARTBEAT", cls.heartbeat, environ),
                   lease=_env_float("AUTOVOICE_WORKER_LEASE", cls.lease, environ),
                   sweep=_env_float("AUTOVOICE_SWEEP_INTERVAL", cls.sweep, environ),
                   stop_grace=_env_float("AUTOVOICE_STOP_GRACE", cls.stop_grace, environ))


@dataclass(frozen=True)
class JobLimits:
    """The config's ``jobs`` section, as the queue uses it."""

    retention_seconds: int = 86400
    max_blob_mb: int = 200
    max_queue_length: int = 200
    timeouts: dict[str, int] | None = None

    @property
    def max_blob_bytes(self) -> int:
        return int(self.max_blob_mb) * 1024 * 1024

    def timeout(self, kind: str) -> int:
        return int((self.timeouts or {}).get(kind, 3600))


def job_limits(cfg: Any | None = None) -> JobLimits:
    """Read the ``jobs`` section (loading the config when none is given; it needs only PyYAML, not torch)."""
    if cfg is None:
        from engine.config import load_config

        cfg = load_config()
    j = cfg.jobs
    return JobLimits(retention_seconds=int(j.retention_seconds), max_blob_mb=int(j.max_blob_mb),
                     max_queue_length=int(j.max_queue_length),
                     timeouts={"convert": int(j.convert_timeout), "build_engines": int(j.build_timeout),
                               "calibrate": int(j.calibrate_timeout), "create_voice": int(j.voice_timeout)})
