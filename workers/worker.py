"""The AutoVoice worker: a non-forking RQ worker with its own heartbeat, lease and dead-peer sweep.

It runs every job in its own process, so the pipelines it loaded stay loaded (and CUDA, which does not
survive ``fork``, keeps working). RQ's ``SimpleWorker`` neither refreshes a running job's started entry
nor looks for dead peers more than every 600 s, so a background thread here does both, every few seconds:
it refreshes this worker's heartbeat hash and RQ registration (re-registering after a Redis restart lost
them), extends the running job's lease, and sweeps for jobs whose worker died (:mod:`workers.sweeper`).

Stopping: the first SIGTERM/SIGINT lets the running job finish for ``AUTOVOICE_STOP_GRACE`` seconds, then
interrupts it at its next chunk and puts it back at the front of its queue; the second interrupts it at
once. A job that raises fails (bad input fails at once, never retried); a cancelled one ends ``stopped``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from typing import Any

from rq import worker_registration
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.timeouts import JobTimeoutException
from rq.worker import SimpleWorker

from workers import keys, logs, sweeper
from workers.connection import CONNECTION_ERRORS, SERIALIZER, with_backoff
from workers.context import JobContext
from workers.errors import JobInterrupted, LeaseLost, WorkerError
from workers.runtime import WorkerRuntime

log = logging.getLogger(__name__)

RQ_WORKER_TTL = 60       # RQ's own worker key (and its blocking dequeue of 45 s)
FINAL_WRITE_WAIT = 300.0  # how long a finished job waits for Redis to come back to record its end
# Set the current job and state of a worker's heartbeat hash, and renew its TTL, only if the hash exists.
_UPDATE_IF_PRESENT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'current_job', ARGV[1], 'state', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
"""


def one_line_error(job: Job, exc: BaseException | None) -> str:
    """The reason a job failed, in one line a user can act on."""
    from engine.errors import AutoVoiceError

    if isinstance(exc, JobTimeoutException):
        return f"timed out after {job.timeout} s (the per-kind limit in the jobs section of the config)"
    if isinstance(exc, AutoVoiceError | WorkerError):
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Heartbeat(threading.Thread):
    """Beats every ``timing.heartbeat`` seconds; sweeps every ``timing.sweep`` seconds."""

    def __init__(self, worker: AutoVoiceWorker) -> None:
        super().__init__(name="autovoice-heartbeat", daemon=True)
        self.worker = worker
        self.stopping = threading.Event()
        self._next_sweep = 0.0
        self._redis_back_at = 0.0   # monotonic time Redis answered again after an outage
        self._outage = False

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout=10)

    def run(self) -> None:
        timing = self.worker.timing
        while not self.stopping.is_set():
            self.beat()
            self.stopping.wait(timing.heartbeat)

    def beat(self) -> None:
        w = self.worker
        try:
            w.publish()
            w.ensure_registered()
            current = w.current
            if current is not None:
                w.maintain_heartbeats(*current)
                w.check_lease(*current)
            else:
                w.heartbeat()
            if self._outage:
                self._outage = False
                self._redis_back_at = time.monotonic()
            self._maybe_sweep()
        except CONNECTION_ERRORS as exc:
            if not self._outage:
                log.warning("worker %s: Redis unreachable (%s); retrying every %.1f s", w.name, exc,
                            w.timing.heartbeat)
            self._outage = True
        except Exception:
            log.exception("worker %s: heartbeat failed", w.name)

    def _maybe_sweep(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.worker.timing.sweep
        # After an outage, give every worker one lease to beat again before calling anyone dead.
        if now - self._redis_back_at < self.worker.timing.lease_ttl:
            return
        w = self.worker
        sweeper.sweep(w.connection, w.timing, w.runtime.limits.retention_seconds, w.name)


class AutoVoiceWorker(SimpleWorker):
    """Runs jobs in-process with the pipelines of :class:`~workers.runtime.WorkerRuntime` kept loaded."""

    max_connection_wait_time = 5.0  # RQ's dequeue backoff cap: resume within seconds of Redis coming back

    def __init__(self, queues: list[str], *, runtime: WorkerRuntime, name: str) -> None:
        super().__init__(queues, name=name, connection=runtime.conn, serializer=SERIALIZER,
                         default_result_ttl=runtime.limits.retention_seconds, worker_ttl=RQ_WORKER_TTL,
                         job_monitoring_interval=max(int(runtime.timing.heartbeat), 1), log_job_description=False)
        self.runtime = runtime
        self.timing = runtime.timing
        self.current: tuple[Job, Execution] | None = None
        self._interrupted_job_id: str | None = None
        self._signals = 0
        self._done = 0
        self._failed = 0
        self._started = time.time()
        self._beat: Heartbeat | None = None

    @property
    def stop_requested(self) -> bool:
        """A stop signal arrived (as opposed to the work loop ending on an error)."""
        return self._signals > 0

    # -- registration and heartbeat -------------------------------------------------------------------------
    def publish(self) -> None:
        """Write this worker's heartbeat hash (what ``autovoice status`` and the studio show)."""
        rt = self.runtime
        snapshot = self.current
        job = snapshot[0] if snapshot else None
        info: dict[str, Any] = {
            "name": self.name, **rt.host.as_dict(), "pid": os.getpid(),
            "threads": int(rt.cfg.runtime.threads or 0), "backend": rt.default_backend,
            "precision": rt.default_precision, "engines": json.dumps(rt.loaded()),
            "checkpoint_sha256": rt.checkpoint_sha256(),
            "queues": json.dumps(self.queue_names()), "state": "busy" if job else "idle",
            "current_job": job.id if job else "", "started": repr(self._started), "last_seen": repr(time.time()),
            "jobs_done": self._done, "jobs_failed": self._failed,
        }
        key = keys.worker(self.name)
        with self.connection.pipeline() as pipe:
            pipe.hset(key, mapping=info)
            pipe.expire(key, self.timing.worker_ttl)
            pipe.sadd(keys.worker_set(), self.name)
            pipe.execute()
        if self.current is not snapshot:  # a job started or ended meanwhile: do not leave its id stale
            self._show_job(self.current[0].id if self.current else "")

    def check_lease(self, job: Job, execution: Execution) -> None:
        """Notice when the sweep gave this job to another worker (this one looked dead): stop running it."""
        lost = self.connection.zscore(job.started_job_registry.key, execution.composite_key) is None
        if lost and self.current is not None and self.current[1] is execution and self.runtime.lease_lost != job.id:
            log.warning("worker %s: job %s %s; abandoning it at its next chunk", self.name, job.id,
                        "was handed to another worker" if self.connection.exists(job.key) else
                        "is gone from Redis (a restart that lost its data?)")
            self.runtime.lease_lost = job.id

    def ensure_registered(self) -> None:
        """Put this worker back in RQ's registry if Redis lost it (a restart without persistence)."""
        if self.birth_date is None:
            return
        if self.connection.sismember(worker_registration.REDIS_WORKER_KEYS, self.key) and \
                self.connection.exists(self.key):
            return
        self.last_heartbeat = self.last_heartbeat or self.birth_date
        with self.connection.pipeline() as pipe:
            pipe.hset(self.key, mapping=self.serialize())
            pipe.hset(self.key, "state", self.get_state())
            worker_registration.register(self, pipe)
            pipe.expire(self.key, self.worker_ttl + 60)
            pipe.execute()
        log.warning("worker %s: re-registered with Redis (its registration was lost)", self.name)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """A running job's lease: short, and extended by the heartbeat thread while the worker lives."""
        return self.timing.lease_ttl

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        super().bootstrap(*args, **kwargs)
        self._beat = Heartbeat(self)
        self._beat.beat()
        self._beat.start()

    def teardown(self) -> None:
        if self._beat is not None:
            self._beat.stop()
        try:
            super().teardown()
            with self.connection.pipeline() as pipe:
                pipe.delete(keys.worker(self.name))
                pipe.srem(keys.worker_set(), self.name)
                pipe.execute()
        except CONNECTION_ERRORS:
            log.warning("worker %s: Redis unreachable at shutdown; its registration will expire", self.name)

    # -- running a job -------------------------------------------------------------------------------------
    def execute_job(self, job: Job, queue: Queue) -> None:
        execution = self.prepare_execution(job)
        self.runtime.lease_lost = None
        self.current = (job, execution)
        self._show_job(job.id)
        try:
            self.perform_job(job, queue, execution)
        finally:
            self.current = None
            self.runtime.lease_lost = None
            JobContext.pop(job.id)
            self._show_job("")
        self.set_state("idle")

    def _show_job(self, job_id: str) -> None:
        """Update the heartbeat hash's current job now (the sweep trusts it), not at the next beat. Only an
        existing hash is updated: after a Redis restart lost it, two fields alone would make a worker record
        without its name, pid or host (the next full beat writes it whole)."""
        try:
            self.connection.eval(_UPDATE_IF_PRESENT, 1, keys.worker(self.name), job_id,
                                 "busy" if job_id else "idle", self.timing.worker_ttl)
        except CONNECTION_ERRORS:
            pass

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        # The job's work is done; wait out a Redis restart rather than lose its result.
        with_backoff(lambda: super(AutoVoiceWorker, self).handle_execution_ended(job, queue, heartbeat_ttl),
                     what=f"record the end of job {job.id}", max_wait=FINAL_WRITE_WAIT)

    def handle_job_success(self, job: Job, queue: Queue, started_job_registry: Any, execution: Execution) -> None:
        if self._lost(job, execution):
            return
        with_backoff(lambda: super(AutoVoiceWorker, self).handle_job_success(job, queue, started_job_registry,
                                                                             execution),
                     what=f"record the result of job {job.id}", max_wait=FINAL_WRITE_WAIT)
        self._done += 1
        self._end_log(job, "finished", None)

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        from engine.errors import AutoVoiceError, Cancelled

        exc = exc_info[1]
        if isinstance(exc, LeaseLost):
            return
        if isinstance(exc, JobInterrupted):
            self._interrupted_job_id = job.id
            return
        if isinstance(exc, Cancelled):
            self._stopped_job_id = job.id
            message = "cancelled"
        elif isinstance(exc, AutoVoiceError | WorkerError):  # the job's input was at fault: one line, no traceback
            message = one_line_error(job, exc)
            log.info("worker %s: job %s failed: %s", self.name, job.id, message)
        else:
            message = one_line_error(job, exc)
            super().handle_exception(job, *exc_info)
        job.meta["error"] = message
        with_backoff(job.save_meta, what=f"record the error of job {job.id}", max_wait=FINAL_WRITE_WAIT)

    def handle_job_failure(self, job: Job, queue: Queue, started_job_registry: Any = None, exc_string: str = "",
                           execution: Execution | None = None) -> None:
        if execution is not None and self._lost(job, execution):
            return
        if self._interrupted_job_id == job.id:
            self._interrupted_job_id = None
            with_backoff(lambda: self._requeue(job, queue, execution), what=f"requeue job {job.id}",
                         max_wait=FINAL_WRITE_WAIT)
            return
        stopped = self._stopped_job_id == job.id
        with_backoff(lambda: super(AutoVoiceWorker, self).handle_job_failure(job, queue, started_job_registry,
                                                                             exc_string, execution),
                     what=f"record the failure of job {job.id}", max_wait=FINAL_WRITE_WAIT)
        if not stopped:  # a cancelled job did not fail
            self._failed += 1
        error = job.meta.get("error") or (exc_string.strip().splitlines() or ["failed"])[-1]
        self._end_log(job, "canceled" if stopped else "failed", str(error))

    def _lost(self, job: Job, execution: Execution) -> bool:
        """True (after cleaning up) when the job's lease went to another worker: record nothing for it."""
        if self.runtime.lease_lost != job.id:
            try:
                if self.connection.zscore(job.started_job_registry.key, execution.composite_key) is not None:
                    return False
                status = self.connection.hget(job.key, "status")
            except CONNECTION_ERRORS:
                return False
            if status is None or status.decode() not in ("started", "queued"):
                return False  # gone with a Redis that lost its data, or already ended: nothing was taken over
        self.runtime.lease_lost = None
        with self.connection.pipeline() as pipe:
            self.cleanup_execution(job, pipeline=pipe, execution=execution)
            pipe.execute()
        if self.connection.exists(job.key):
            logs.append(self.connection, job.id, f"worker {self.name} stopped running this job: it had been "
                                                 "handed to another worker", self.runtime.limits.retention_seconds)
            log.warning("worker %s: job %s belongs to another worker now; its result here is discarded", self.name,
                        job.id)
        else:
            log.warning("worker %s: job %s is gone from Redis; its result here is discarded", self.name, job.id)
        return True

    def _requeue(self, job: Job, queue: Queue, execution: Execution | None) -> None:
        with self.connection.pipeline() as pipe:
            pipe.multi()  # RQ's enqueue_job expects a pipeline already in MULTI when it is given one
            self.cleanup_execution(job, pipeline=pipe, execution=execution)
            job.started_at = None
            job.worker_name = None
            queue.enqueue_job(job, pipeline=pipe, at_front=True)
            pipe.execute()
        logs.append(self.connection, job.id, f"worker {self.name} is shutting down: job put back at the front of "
                                             f"the {queue.name} queue", self.runtime.limits.retention_seconds)
        log.info("worker %s: requeued job %s before stopping", self.name, job.id)

    def _end_log(self, job: Job, status: str, error: str | None) -> None:
        ctx = JobContext.pop(job.id)
        stream = ctx.log if ctx is not None else logs.JobLog(self.connection, job.id,
                                                              self.runtime.limits.retention_seconds)
        if error and status == "failed":
            stream.line(f"failed: {error}")
        stream.end(status, error, max_wait=FINAL_WRITE_WAIT)
        try:
            self.connection.delete(keys.cancel_flag(job.id))
        except CONNECTION_ERRORS:
            pass

    # -- stopping -------------------------------------------------------------------------------------------
    def request_stop(self, signum: int, frame: Any) -> None:
        self._signals += 1
        self.runtime.request_stop(self.timing.stop_grace)
        if self.current is not None:
            log.info("worker %s: stopping; the running job has %.0f s to finish before it is requeued", self.name,
                     self.timing.stop_grace)
        super().request_stop(signum, frame)

    def request_force_stop(self, signum: int, frame: Any) -> None:
        self._signals += 1
        if self.current is not None and self._signals == 2:
            log.warning("worker %s: second stop signal: requeueing the running job at its next chunk", self.name)
            self.runtime.request_stop(0.0)
            return
        super().request_force_stop(signum, frame)


def worker_name(host: str, device_label: str) -> str:
    return f"{keys.slug(host)}.{keys.slug(device_label)}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
