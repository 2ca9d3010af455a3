"""Dead-peer sweep: find jobs whose worker died, retry each once (on another worker), then fail it.

A running job holds a lease: its entry in RQ's started registry, scored by expiry, which its worker's
heartbeat extends every few seconds. When a lease has expired and the worker's own heartbeat hash is gone
too, the worker is dead (SIGKILL, OOM, lost host): the job is requeued at the front of its queue once,
and failed with a reason the second time. Jobs that failed on their own (bad input) never come here.

It also catches the one other way to lose a job: a worker killed between taking a job off its queue and
registering it as started. Such a job is queued in name but in no queue; seen twice a lease apart, it is
put back.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import redis
from rq.exceptions import NoSuchJobError
from rq.executions import WORKER_EXECUTIONS_KEY_TEMPLATE
from rq.job import Job, JobStatus
from rq.job_lifecycle import record_job_failure
from rq.queue import Queue
from rq.utils import now as rq_now
from rq.utils import parse_composite_key, utcformat

from workers import keys, logs
from workers.connection import SERIALIZER
from workers.enqueue import epoch
from workers.settings import MAX_ABANDONED_RETRIES, Timing
from workers.status import queue_names

log = logging.getLogger(__name__)

ORPHAN_SCAN = 500  # most recent jobs checked for "queued but in no queue"


@dataclass
class SweepReport:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    extended: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)


def _owner_alive(conn: redis.Redis, owner: str, job_id: str) -> bool:
    """The owner still beats and still says it runs this job."""
    if not owner:
        return False
    current = conn.hget(keys.worker(owner), "current_job")
    return current is not None and current.decode() == job_id


def sweep(conn: redis.Redis, timing: Timing, retention: int, sweeper: str) -> SweepReport:
    """One pass over every queue's started registry (and the recent job history), by one worker at a time.

    Args:
        conn: Redis client.
        timing: heartbeat, lease and sweep intervals.
        retention: TTL for the log lines it writes.
        sweeper: the name of the worker sweeping (for the log).
    """
    report = SweepReport()
    if not conn.set(keys.sweep_lock(), sweeper, nx=True, px=max(int(timing.sweep * 900), 100)):
        return report
    now = int(time.time())
    for name in queue_names(conn):
        queue = Queue(name, connection=conn, serializer=SERIALIZER)
        registry_key = queue.started_job_registry.key
        for entry in conn.zrangebyscore(registry_key, 0, now):
            _expired(conn, queue, registry_key, entry.decode(), timing, retention, report)
    _orphans(conn, timing, retention, report)
    if report.requeued or report.failed or report.orphans:
        log.info("sweep by %s: requeued %s, failed %s, orphans %s", sweeper, report.requeued, report.failed,
                  report.orphans)
    return report


def _expired(conn: redis.Redis, queue: Queue, registry_key: str, entry: str, timing: Timing, retention: int,
             report: SweepReport) -> None:
    job_id, execution_id = parse_composite_key(entry)
    execution_key = f"rq:execution:{entry}"
    try:
        job = Job.fetch(job_id, connection=conn, serializer=SERIALIZER)
    except NoSuchJobError:
        conn.zrem(registry_key, entry)
        return
    if job.get_status(refresh=False) != JobStatus.STARTED:
        conn.zrem(registry_key, entry)  # a leftover of a job that ended
        return
    owner = (conn.hget(execution_key, "worker_name") or b"").decode() or (job.worker_name or "")
    if _owner_alive(conn, owner, job_id):
        # Alive but late (a Redis restart, a long GC pause): extend rather than let RQ's cleanup fail it.
        conn.zadd(registry_key, {entry: int(time.time()) + timing.lease_ttl}, xx=True)
        report.extended.append(job_id)
        return
    attempts = int(job.meta.get("abandoned", 0))
    dead = list(job.meta.get("abandoned_workers", [])) + [owner or "unknown"]
    reason = (f"worker {owner or 'unknown'} stopped responding while running this job "
              f"(no heartbeat for over {timing.lease_ttl} s)")
    job.meta.update({"abandoned": attempts + 1, "abandoned_workers": dead})
    if job.enqueued_at is not None:  # a requeue stamps a new enqueue time: keep when it was submitted
        job.meta.setdefault("submitted_at", epoch(job.enqueued_at))
    with conn.pipeline() as pipe:
        pipe.multi()  # RQ's enqueue_job expects a pipeline already in MULTI when it is given one
        pipe.zrem(registry_key, entry)
        pipe.delete(execution_key)
        if owner:
            pipe.srem(WORKER_EXECUTIONS_KEY_TEMPLATE.format(owner), entry)
        if attempts < MAX_ABANDONED_RETRIES:
            job.started_at = None
            job.worker_name = None  # type: ignore[assignment]
            queue.enqueue_job(job, pipeline=pipe, at_front=True)
        else:
            job.meta["error"] = f"{reason}; it had already been retried after worker {dead[0]} died, so it failed"
            job.ended_at = rq_now()
            record_job_failure(job, job.meta["error"], pipe)
            pipe.hset(job.key, mapping={"meta": SERIALIZER.dumps(job.meta), "ended_at": utcformat(job.ended_at)})
        pipe.execute()
    if attempts < MAX_ABANDONED_RETRIES:
        logs.append(conn, job_id, f"{reason}: retrying it on another worker "
                                  f"(retry {attempts + 1} of {MAX_ABANDONED_RETRIES})", retention)
        report.requeued.append(job_id)
    else:
        logs.end(conn, job_id, "failed", retention, error=job.meta["error"], text=job.meta["error"])
        report.failed.append(job_id)


def _orphans(conn: redis.Redis, timing: Timing, retention: int, report: SweepReport) -> None:
    ids = [i.decode() for i in conn.zrevrange(keys.job_index(), 0, ORPHAN_SCAN - 1)]
    if not ids:
        return
    with conn.pipeline() as pipe:
        for job_id in ids:
            pipe.hmget(Job.key_for(job_id), ["status", "origin"])
        rows = pipe.execute()
    now = time.time()
    waiting: dict[str, set[str]] = {}  # queue name -> ids in it, read once per sweep (queues are capped)
    for job_id, (status, origin) in zip(ids, rows, strict=True):
        if status is None or status.decode() != JobStatus.QUEUED.value or origin is None:
            continue
        queue = Queue(origin.decode(), connection=conn, serializer=SERIALIZER)
        if queue.name not in waiting:
            waiting[queue.name] = {i.decode() for i in conn.lrange(queue.key, 0, -1)}
        if job_id in waiting[queue.name]:
            continue
        mark = keys.orphan_mark(job_id)
        if conn.set(mark, repr(now), nx=True, ex=max(int(timing.lease_ttl * 10), 60)):
            continue  # first sighting: a worker may be between popping it and starting it
        first = float(conn.get(mark) or now)
        if now - first < timing.lease_ttl:
            continue
        with conn.pipeline() as pipe:
            pipe.watch(Job.key_for(job_id))
            still = pipe.hget(Job.key_for(job_id), "status")
            if still is None or still.decode() != JobStatus.QUEUED.value or conn.lpos(queue.key, job_id) is not None:
                pipe.unwatch()
                continue
            pipe.multi()
            pipe.lpush(queue.key, job_id)
            pipe.delete(mark)
            try:
                pipe.execute()
            except redis.WatchError:
                continue
        logs.append(conn, job_id, "this job was taken off its queue by a worker that died before starting it: "
                                  "put back on the queue", retention)
        report.orphans.append(job_id)
