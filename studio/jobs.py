"""Client helpers the studio adds on top of :mod:`workers.enqueue`: submitting with an owner, queue
positions, ETAs and retries. All of it is Redis reads and writes; nothing here runs a job."""

from __future__ import annotations

import math
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from rq.job import Job
from rq.registry import FailedJobRegistry

from studio import owners
from workers import blobs, keys, logs
from workers.connection import SERIALIZER
from workers.enqueue import describe_job, enqueue, fetch_job, get_queue, list_jobs
from workers.errors import QueueFull, WorkerError
from workers.settings import JobLimits
from workers.status import live_workers

RECENT_FOR_ETA = 100
ETA_CACHE_SECONDS = 10.0
_eta_cache: dict[str, tuple[float, float | None]] = {}


def submit_convert(conn: redis.Redis, limits: JobLimits, input_path: str | Path, voice: str,
                   options: dict[str, Any], backend: str, precision: str, user: str = "") -> str:
    """Upload ``input_path`` as a blob and enqueue its conversion to the voice named ``voice``.

    Raises:
        QueueFull: the conversion queue is full (checked before uploading).
        BlobError: the file is larger than ``jobs.max_blob_mb``.
    """
    path = Path(input_path)
    if get_queue(conn).count >= limits.max_queue_length:
        raise QueueFull(f"busy, try again later: the {keys.CONVERT_QUEUE} queue is full "
                        f"(limit {limits.max_queue_length}, jobs.max_queue_length)")
    job_id = uuid.uuid4().hex
    owners.set_job_owner(conn, job_id, user, limits.retention_seconds)
    blob = blobs.put_file(conn, path, ttl=limits.retention_seconds, max_bytes=limits.max_blob_bytes)
    by = f" by {user}" if user else ""
    return enqueue(conn, "convert", {"input_blob": blob, "voice": {"name": voice}, "options": options,
                                     "backend": backend, "precision": precision},
                   limits=limits, description=f"convert {path.name} -> {voice}{by}", job_id=job_id)


def submit_create_voice(conn: redis.Redis, limits: JobLimits, name: str, clip_paths: list[str],
                        user: str = "") -> str:
    """Upload reference clips and enqueue the ``create_voice`` job for ``name``."""
    job_id = uuid.uuid4().hex
    owners.set_job_owner(conn, job_id, user, limits.retention_seconds)
    owners.set_voice_owner(conn, name, user)
    ids = [blobs.put_file(conn, p, ttl=limits.retention_seconds, max_bytes=limits.max_blob_bytes)
           for p in clip_paths]
    by = f" by {user}" if user else ""
    return enqueue(conn, "create_voice", {"name": name, "clip_blobs": ids}, limits=limits,
                   description=f"create voice {name}{by}", job_id=job_id)


def snapshot(conn: redis.Redis, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    """``describe_job`` of each job (without results); a job past the retention period is ``expired``."""
    if not job_ids:
        return {}
    jobs = Job.fetch_many(job_ids, connection=conn, serializer=SERIALIZER)
    out: dict[str, dict[str, Any]] = {}
    for job_id, job in zip(job_ids, jobs, strict=True):
        out[job_id] = describe_job(job, with_result=False) if job is not None else \
            {"job_id": job_id, "status": "expired", "error": "expired after the retention period"}
    return out


def result(conn: redis.Redis, job_id: str) -> dict[str, Any]:
    """A finished job's return value (``{}`` when it has none)."""
    value = fetch_job(conn, job_id).return_value()
    return value if isinstance(value, dict) else {}


def queue_positions(conn: redis.Redis, job_ids: list[str],
                    queue: str = keys.CONVERT_QUEUE) -> dict[str, int | None]:
    """0-based place of each job in ``queue`` (0: next to start); ``None`` when it is not waiting there."""
    key = get_queue(conn, queue).key
    with conn.pipeline() as pipe:
        for j in job_ids:
            pipe.lpos(key, j)
        found = pipe.execute()
    return {j: (int(p) if p is not None else None) for j, p in zip(job_ids, found, strict=True)}


def serving_workers(conn: redis.Redis, queue: str = keys.CONVERT_QUEUE) -> int:
    """How many live workers listen to ``queue``."""
    return sum(1 for w in live_workers(conn) if queue in (w.get("queues") or []))


def average_run_seconds(conn: redis.Redis, kind: str = "convert") -> float | None:
    """Mean running time of recent finished jobs of ``kind`` (cached for a few seconds)."""
    now = time.monotonic()
    cached = _eta_cache.get(kind)
    if cached is not None and now - cached[0] < ETA_CACHE_SECONDS:
        return cached[1]
    runs = [j["run_seconds"] for j in list_jobs(conn, RECENT_FOR_ETA)
            if j.get("kind") == kind and j.get("status") == "finished" and j.get("run_seconds")]
    value = float(sum(runs) / len(runs)) if runs else None
    _eta_cache[kind] = (now, value)
    return value


def eta_seconds(info: dict[str, Any], position: int | None, workers: int, avg_run: float | None) -> float | None:
    """Seconds until the job is done: from its progress when running, from its place in line when queued."""
    status = info.get("status")
    if status == "started":
        progress = info.get("progress") or {}
        fraction = float(progress.get("fraction") or 0.0)
        elapsed = time.time() - float(info.get("started_at") or time.time())
        if progress.get("stage") == "converting" and 0.0 < fraction < 1.0:
            return elapsed * (1.0 - fraction) / fraction
        return max(avg_run - elapsed, 1.0) if avg_run else None
    if status == "queued" and position is not None and avg_run:
        return math.ceil((position + 1) / max(workers, 1)) * avg_run + avg_run
    return None


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"~{max(int(round(seconds)), 1)} s"
    return f"~{int(seconds // 60)} min {int(seconds % 60):02d} s"


def retry(conn: redis.Redis, job_id: str, limits: JobLimits) -> str:
    """Put a failed job back in its queue (its inputs must still be in Redis); returns its queue.

    Raises:
        WorkerError: the job is not among the failed jobs (already retried, expired, or never failed).
    """
    job = fetch_job(conn, job_id)
    registry = FailedJobRegistry(job.origin, connection=conn, serializer=SERIALIZER)
    if job_id not in registry.get_job_ids():
        raise WorkerError(f"job {job_id} is not a failed job (it may have been retried already)")
    for key in ("error", "progress"):
        job.meta.pop(key, None)
    job.save_meta()
    conn.delete(keys.cancel_flag(job_id))
    logs.append(conn, job_id, "retry requested from the studio", limits.retention_seconds)
    registry.requeue(job)
    return job.origin


def place(position: int | None) -> str:
    """A queue position in words: ``next`` or ``N ahead``."""
    if position is None:
        return ""
    return "next" if position == 0 else f"{position} ahead"


def describe_progress(info: dict[str, Any], position: int | None, workers: int, avg_run: float | None) -> str:
    """``queued: 2 ahead, ETA ~20 s`` / ``running on w1: converting 2/5 (40%), ETA ~3 s`` / the final status."""
    status = info.get("status", "unknown")
    eta = format_eta(eta_seconds(info, position, workers, avg_run))
    tail = f", ETA {eta}" if eta else ""
    if status == "queued":
        where = place(position) or "waiting"
        no_workers = "" if workers else " (no worker is running: start one with `autovoice worker`)"
        return f"queued: {where}{no_workers}{tail}"
    if status == "started":
        p = info.get("progress") or {}
        worker = info.get("worker") or "a worker"
        if p:
            return (f"progress: {p.get('stage', 'working')} {p.get('done', 0)}/{p.get('total', 0)} "
                    f"({int(100 * float(p.get('fraction') or 0))}%) on {worker}{tail}")
        return f"running on {worker}{tail}"
    if status == "canceling":
        return "cancelling"
    return str(status)
