"""The running job as its function sees it: log lines, progress in ``job.meta``, and when to stop.

Every Redis write here tolerates an outage: log lines wait in memory, progress updates are skipped, and
the cancel check answers "keep going", so a Redis restart never fails the conversion in flight.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import redis
from rq import get_current_job
from rq.job import Job

from workers import blobs, keys
from workers.connection import CONNECTION_ERRORS, with_backoff
from workers.errors import JobInterrupted, LeaseLost, WorkerError
from workers.logs import JobLog
from workers.runtime import WorkerRuntime, current

log = logging.getLogger(__name__)

PROGRESS_MIN_INTERVAL = 0.25  # seconds between progress writes (the last of a stage is always written)


class JobContext:
    """Helpers bound to one job; :meth:`current` gives the one running in this process."""

    _by_job: dict[str, JobContext] = {}

    def __init__(self, job: Job, runtime: WorkerRuntime) -> None:
        self.job = job
        self.runtime = runtime
        self.conn: redis.Redis = job.connection
        self.log = JobLog(self.conn, job.id, runtime.limits.retention_seconds)
        self._last_progress = 0.0

    @classmethod
    def current(cls) -> JobContext:
        job = get_current_job()
        if job is None:
            raise WorkerError("not inside a job")
        ctx = cls._by_job.get(job.id)
        if ctx is None or ctx.job is not job:
            ctx = cls._by_job[job.id] = cls(job, current(job.connection))
        return ctx

    @classmethod
    def pop(cls, job_id: str) -> JobContext | None:
        """Forget the job's context (the worker calls this when the job ends, to write the final event)."""
        return cls._by_job.pop(job_id, None)

    # -- reporting ------------------------------------------------------------------------------------------
    def say(self, line: str) -> None:
        """A log line: to the job's stream and to the worker's own log."""
        log.info("job %s: %s", self.job.id, line)
        self.log.line(line)

    def progress(self, stage: str, done: int, total: int) -> None:
        """``job.meta["progress"] = {stage, done, total, fraction}`` (throttled)."""
        now = time.monotonic()
        if done < total and now - self._last_progress < PROGRESS_MIN_INTERVAL:
            return
        self._last_progress = now
        self.job.meta["progress"] = {"stage": str(stage), "done": int(done), "total": int(total),
                                     "fraction": round(float(done) / max(int(total), 1), 4), "time": time.time()}
        try:
            self.job.save_meta()
        except CONNECTION_ERRORS:
            pass  # the next update, or the final state, will say it

    # -- stopping -------------------------------------------------------------------------------------------
    def cancel_requested(self) -> bool:
        try:
            return bool(self.conn.exists(keys.cancel_flag(self.job.id)))
        except CONNECTION_ERRORS:
            return False

    def should_stop(self) -> bool:
        """True when the job was cancelled; raises :class:`JobInterrupted` when the worker is stopping, and
        :class:`LeaseLost` when the job was given to another worker (this one looked dead)."""
        if self.runtime.lease_lost == self.job.id:
            raise LeaseLost(f"worker {self.runtime.worker_name} lost this job's lease to another worker")
        if self.runtime.interrupt_due():
            raise JobInterrupted(f"worker {self.runtime.worker_name} is shutting down")
        return self.cancel_requested()

    # -- outputs --------------------------------------------------------------------------------------------
    def put_output(self, path: str | Path, suffix: str, name: str | None = None) -> str:
        """Upload a result file as the blob ``<job id>-<suffix>`` (a retry replaces it), waiting out outages."""
        lim = self.runtime.limits
        blob_id = f"{self.job.id}-{suffix}"
        return with_backoff(lambda: blobs.put_file(self.conn, path, ttl=lim.retention_seconds,
                                                   max_bytes=lim.max_blob_bytes, name=name, blob_id=blob_id),
                            what=f"store the output of job {self.job.id}")

    def put_bytes(self, data: bytes, suffix: str, name: str) -> str:
        lim = self.runtime.limits
        blob_id = f"{self.job.id}-{suffix}"
        return with_backoff(lambda: blobs.put(self.conn, data, name=name, ttl=lim.retention_seconds,
                                              max_bytes=lim.max_blob_bytes, blob_id=blob_id),
                            what=f"store the output of job {self.job.id}")

    def fetch_input(self, blob_id: str, folder: Path) -> Path:
        """Download an input blob into ``folder`` (waiting out a Redis outage)."""
        return with_backoff(lambda: blobs.save_to(self.conn, blob_id, folder),
                            what=f"read input blob {blob_id}")

    def meta_update(self, **values: Any) -> None:
        self.job.meta.update(values)
        try:
            self.job.save_meta()
        except CONNECTION_ERRORS:
            pass
