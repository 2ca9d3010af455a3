"""What the cluster looks like right now: queues, live workers, Redis memory, recent failures.

Used by ``autovoice status`` (whose exit code is the health check) and by the studio's Workers tab.
Reads only; never runs RQ's registry cleanups (those are the workers' job).
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from rq.job import Job
from rq.queue import Queue

from workers import keys
from workers.connection import SERIALIZER

RECENT_FAILURES = 10
_JSON_FIELDS = ("engines", "queues")
_INT_FIELDS = ("pid", "memory_mb", "cores", "threads", "jobs_done", "jobs_failed")
_FLOAT_FIELDS = ("started", "last_seen")


def _decode_worker(raw: dict[bytes, bytes]) -> dict[str, Any]:
    w: dict[str, Any] = {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}
    for f in _JSON_FIELDS:
        if f in w:
            try:
                w[f] = json.loads(w[f])
            except ValueError:
                pass
    for f in _INT_FIELDS:
        if f in w and w[f].lstrip("-").isdigit():
            w[f] = int(w[f])
    for f in _FLOAT_FIELDS:
        if f in w:
            try:
                w[f] = float(w[f])
            except ValueError:
                pass
    return w


def live_workers(conn: redis.Redis) -> list[dict[str, Any]]:
    """Workers whose heartbeat hash has not expired (dead ones are dropped from the set as they are seen)."""
    names = sorted(n.decode() for n in conn.smembers(keys.worker_set()))
    with conn.pipeline() as pipe:
        for n in names:
            pipe.hgetall(keys.worker(n))
        raws = pipe.execute()
    alive, dead = [], []
    for name, raw in zip(names, raws, strict=True):
        (alive.append(_decode_worker(raw)) if raw else dead.append(name))
    if dead:
        conn.srem(keys.worker_set(), *dead)
    return alive


def queue_names(conn: redis.Redis) -> list[str]:
    prefix = Queue.redis_queue_namespace_prefix
    return sorted(k.decode()[len(prefix):] for k in conn.smembers(Queue.redis_queues_keys))


def queues(conn: redis.Redis) -> list[dict[str, Any]]:
    now = time.time()
    out = []
    for name in queue_names(conn):
        q = Queue(name, connection=conn, serializer=SERIALIZER)
        with conn.pipeline() as pipe:
            pipe.llen(q.key)
            pipe.zcard(q.started_job_registry.key)
            pipe.zcount(q.started_job_registry.key, 0, now)  # leases no heartbeat has extended: worker gone
            pipe.zcount(q.finished_job_registry.key, now, "+inf")
            pipe.zcount(q.failed_job_registry.key, now, "+inf")
            waiting, started, stalled, finished, failed = pipe.execute()
        out.append({"name": name, "waiting": waiting, "started": started, "stalled": stalled, "finished": finished,
                    "failed": failed})
    return out


def recent_failures(conn: redis.Redis, limit: int = RECENT_FAILURES) -> list[dict[str, Any]]:
    """The latest failed (or cancelled) jobs across queues, newest first, with their one-line reason.

    Newest by the time each job ended: a failed-job registry's score is when the entry expires, in whole
    seconds, so jobs that failed within the same second tie there. Each queue's candidates are its
    ``limit`` highest scores and every entry tied with the lowest of them."""
    from workers.enqueue import describe_job

    ids: list[str] = []
    for name in queue_names(conn):
        key = Queue(name, connection=conn, serializer=SERIALIZER).failed_job_registry.key
        top = conn.zrevrange(key, 0, limit - 1, withscores=True)
        if top:
            ids += [jid.decode() for jid in conn.zrangebyscore(key, top[-1][1], "+inf")]
    jobs = Job.fetch_many(ids, connection=conn, serializer=SERIALIZER)
    described = [describe_job(j, with_result=False) for j in jobs if j is not None]
    described.sort(key=lambda d: d["ended_at"] or d["enqueued_at"] or 0.0, reverse=True)
    return described[:limit]


def redis_summary(conn: redis.Redis) -> dict[str, Any]:
    mem = conn.info("memory")
    server = conn.info("server")
    persistence = conn.info("persistence")
    return {"version": server.get("redis_version"), "uptime_seconds": server.get("uptime_in_seconds"),
            "used_memory": mem.get("used_memory"), "used_memory_human": mem.get("used_memory_human"),
            "maxmemory": mem.get("maxmemory"), "aof_enabled": bool(persistence.get("aof_enabled"))}


def cluster_status(conn: redis.Redis) -> dict[str, Any]:
    """Everything ``autovoice status --json`` prints."""
    return {"time": time.time(), "redis": redis_summary(conn), "queues": queues(conn),
            "workers": live_workers(conn), "failures": recent_failures(conn)}
