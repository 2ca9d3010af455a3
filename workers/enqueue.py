"""The client side of the queue: submit jobs, follow them, cancel them, list them (no torch, no engine).

Jobs are enqueued by dotted path with JSON arguments; each queue is capped (``jobs.max_queue_length``) and
each kind has its own timeout. Results, failures and the job history live for ``jobs.retention_seconds``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.queue import Queue

from workers import blobs, calibrations, keys, logs
from workers.connection import CONNECTION_ERRORS, SERIALIZER, with_backoff
from workers.errors import JobNotFound, QueueFull, WorkerError
from workers.settings import MAX_ABANDONED_RETRIES, JobLimits, job_limits

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
FINAL_STATUSES = ("finished", "failed", "canceled")
_ENQUEUE_ATTEMPTS = 50


def get_queue(conn: redis.Redis, name: str = keys.CONVERT_QUEUE) -> Queue:
    return Queue(name, connection=conn, serializer=SERIALIZER)


def fetch_job(conn: redis.Redis, job_id: str) -> Job:
    try:
        return Job.fetch(job_id, connection=conn, serializer=SERIALIZER)
    except NoSuchJobError:
        raise JobNotFound(f"no job {job_id} (unknown, or expired after the retention period)") from None


def enqueue(conn: redis.Redis, kind: str, kwargs: dict[str, Any], *, queue_name: str = keys.CONVERT_QUEUE,
            limits: JobLimits | None = None, description: str | None = None, job_id: str | None = None) -> str:
    """Enqueue one job of ``kind`` with JSON ``kwargs``; returns its id.

    Raises:
        QueueFull: the queue already holds ``max_queue_length`` waiting jobs.
    """
    if kind not in keys.JOB_FUNCTIONS:
        raise WorkerError(f"unknown job kind {kind!r}; kinds: {', '.join(keys.JOB_FUNCTIONS)}")
    json.dumps(kwargs)  # refuse anything that is not plain JSON here, not in the worker
    lim = limits or job_limits()
    queue = get_queue(conn, queue_name)
    job = queue.create_job(keys.JOB_FUNCTIONS[kind], kwargs=kwargs, timeout=lim.timeout(kind),
                           result_ttl=lim.retention_seconds, failure_ttl=lim.retention_seconds,
                           description=description or kind, job_id=job_id or uuid.uuid4().hex,
                           meta={"kind": kind})
    for _ in range(_ENQUEUE_ATTEMPTS):
        with conn.pipeline() as pipe:
            try:
                pipe.watch(queue.key)
                waiting = pipe.llen(queue.key)
                if waiting >= lim.max_queue_length:
                    raise QueueFull(f"busy, try again later: the {queue_name} queue already holds {waiting} waiting "
                                    f"job(s) (limit {lim.max_queue_length}, jobs.max_queue_length)")
                pipe.multi()
                queue.enqueue_job(job, pipeline=pipe)
                pipe.zadd(keys.job_index(), {job.id: time.time()})
                pipe.zremrangebyscore(keys.job_index(), "-inf", time.time() - lim.retention_seconds)
                pipe.execute()
                return job.id
            except redis.WatchError:
                continue
    raise QueueFull(f"busy, try again later: the {queue_name} queue is changing too fast to enqueue")


def voice_spec(conn: redis.Redis, voice: str, limits: JobLimits) -> dict[str, str]:
    """A voice argument: a reference audio file is uploaded as a blob; anything else is a voice name."""
    path = reference_clip(voice)
    if path is not None:
        return {"reference_blob": blobs.put_file(conn, path, ttl=limits.retention_seconds,
                                                 max_bytes=limits.max_blob_bytes)}
    return {"name": voice}


def reference_clip(voice: str) -> Path | None:
    """The reference audio file a voice argument names, or None for a voice name."""
    path = Path(voice)
    if path.is_file():
        return path
    if path.suffix.lower() in AUDIO_SUFFIXES:
        raise WorkerError(f"reference clip not found: {voice}")
    return None


def submit_convert(conn: redis.Redis, input_path: str | Path, voice: str, *, options: dict[str, Any] | None = None,
                   backend: str = "auto", precision: str = "fp32", limits: JobLimits | None = None) -> str:
    """Upload ``input_path`` (and a reference clip, if ``voice`` is a file) and enqueue a conversion."""
    from engine.errors import AutoVoiceError
    from workers.jobs import convert_options

    lim = limits or job_limits()
    path = Path(input_path)
    if not path.is_file():
        raise WorkerError(f"input file not found: {input_path}")
    try:  # the worker checks them again; a mistake is cheaper to report before the upload
        convert_options(options)
    except AutoVoiceError as exc:
        raise WorkerError(str(exc)) from None
    if get_queue(conn).count >= lim.max_queue_length:  # refuse before uploading anything
        raise QueueFull(f"busy, try again later: the {keys.CONVERT_QUEUE} queue is full "
                        f"(limit {lim.max_queue_length}, jobs.max_queue_length)")
    reference_clip(voice)  # a missing clip is refused before the input is uploaded for nothing
    input_blob = blobs.put_file(conn, path, ttl=lim.retention_seconds, max_bytes=lim.max_blob_bytes)
    spec = voice_spec(conn, voice, lim)
    return enqueue(conn, "convert", {"input_blob": input_blob, "voice": spec, "options": options or {},
                                     "backend": backend, "precision": precision},
                   limits=lim, description=f"convert {path.name} -> {spec.get('name', 'reference clip')}")


def submit_create_voice(conn: redis.Redis, name: str, clip_paths: Sequence[str | Path],
                        limits: JobLimits | None = None) -> str:
    lim = limits or job_limits()
    ids = [blobs.put_file(conn, p, ttl=lim.retention_seconds, max_bytes=lim.max_blob_bytes) for p in clip_paths]
    return enqueue(conn, "create_voice", {"name": name, "clip_blobs": ids}, limits=lim,
                   description=f"create voice {name}")


def submit_calibration(conn: redis.Redis, name: str, files: Sequence[str | Path],
                       limits: JobLimits | None = None) -> str:
    """Store the audio files (or one zip) as the calibration set ``name`` and enqueue its calibration."""
    lim = limits or job_limits()
    calibrations.store_audio(conn, name, [(Path(f).name, Path(f).read_bytes()) for f in files],
                             lim.max_blob_bytes)
    return enqueue(conn, "calibrate", {"name": name}, limits=lim, description=f"calibrate {name}")


def enqueue_rebuild(conn: redis.Redis, backend: str, precision: str, calibration: str | None = None,
                    queues: Sequence[str] | None = None, limits: JobLimits | None = None, *, by: str = "",
                    before_enqueue: Callable[[str], None] | None = None) -> str:
    """An engine rebuild: one build job per host-and-GPU-model queue, as a group; returns the group id.

    No member waits on another; :func:`group_status` derives the group's state from its members.
    ``by`` names who asked (in each member's description); ``before_enqueue`` is called with each member's
    job id before that job is enqueued (the studio records the job's owner there).
    """
    from workers.status import live_workers

    lim = limits or job_limits()
    targets = sorted(set(queues) if queues else {w["build_queue"] for w in live_workers(conn) if w.get("build_queue")})
    if not targets:
        raise WorkerError("no live workers to build engines on: start one with `autovoice worker`")
    if calibration:
        calibrations.npz(conn, calibration)  # fail now if the set is missing or not calibrated
    group_id = uuid.uuid4().hex
    members = []
    for q in targets:
        job_id = uuid.uuid4().hex
        if before_enqueue is not None:
            before_enqueue(job_id)
        enqueue(conn, "build_engines", {"backend": backend, "precision": precision, "calibration": calibration},
                queue_name=q, limits=lim, job_id=job_id,
                description=f"build {backend}/{precision} on {q}" + (f" by {by}" if by else ""))
        members.append({"job_id": job_id, "queue": q})
    record = {"group_id": group_id, "kind": "rebuild", "created": time.time(), "members": members,
              "args": {"backend": backend, "precision": precision, "calibration": calibration}}
    conn.set(keys.group(group_id), json.dumps(record), ex=lim.retention_seconds)
    return group_id


def group_status(conn: redis.Redis, group_id: str) -> dict[str, Any]:
    """``finished`` when every member finished; ``failed`` (naming the member and its reason) as soon as
    one failed or was cancelled; else ``running`` or ``queued``."""
    raw = conn.get(keys.group(group_id))
    if raw is None:
        raise JobNotFound(f"no job group {group_id} (unknown, or expired after the retention period)")
    record = json.loads(raw)
    members = []
    for m in record["members"]:
        try:
            members.append(job_info(conn, m["job_id"]) | {"queue": m["queue"]})
        except JobNotFound:
            members.append({"job_id": m["job_id"], "queue": m["queue"], "status": "failed",
                            "error": "the job expired or was deleted"})
    failed = [m for m in members if m["status"] in ("failed", "canceled")]
    if failed:
        status = "failed"
        m = failed[0]
        error = f"{m['queue']} (job {m['job_id']}) {m['status']}: {m.get('error') or 'no reason recorded'}"
    elif all(m["status"] == "finished" for m in members):
        status, error = "finished", None
    elif any(m["status"] == "started" for m in members):
        status, error = "running", None
    else:
        status, error = "queued", None
    done = all(m["status"] in FINAL_STATUSES for m in members)
    return {"group_id": group_id, "status": status, "error": error, "done": done, "members": members,
            "args": record.get("args", {}), "created": record.get("created")}


def epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def _status(job: Job) -> str:
    raw = job.get_status(refresh=False)
    value = raw.value if isinstance(raw, JobStatus) else str(raw)
    return "canceled" if value in ("stopped", "canceled") else value


def _error(job: Job, status: str) -> str | None:
    if status not in ("failed", "canceled"):
        return None
    if job.meta.get("error"):
        return str(job.meta["error"])
    if status == "canceled":
        return "cancelled"
    result = job.latest_result()
    text = (result.exc_string if result is not None else None) or job.exc_info or ""
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "failed (no reason recorded)"


def job_info(conn: redis.Redis, job_id: str, with_result: bool = True) -> dict[str, Any]:
    """A JSON-able summary of a job: status, worker, timings, progress, error, result."""
    return describe_job(fetch_job(conn, job_id), with_result)


def describe_job(job: Job, with_result: bool = True) -> dict[str, Any]:
    status = _status(job)
    enq, start, end = epoch(job.enqueued_at), epoch(job.started_at), epoch(job.ended_at)
    enq = job.meta.get("submitted_at", enq)  # a retried job was enqueued again: show when it was submitted
    if status in ("queued", "deferred", "scheduled"):
        start = end = None
    info: dict[str, Any] = {
        "job_id": job.id, "kind": job.meta.get("kind"), "status": status, "queue": job.origin,
        "worker": job.worker_name or None, "description": job.description,
        "enqueued_at": enq, "started_at": start, "ended_at": end if status in FINAL_STATUSES else None,
        "wait_seconds": (start - enq) if enq is not None and start is not None else None,
        "run_seconds": (end - start) if start is not None and end is not None and status in FINAL_STATUSES
        else None,
        # Each worker death counts in "abandoned"; only those up to the limit were retried.
        "progress": job.meta.get("progress"),
        "retries": min(int(job.meta.get("abandoned", 0)), MAX_ABANDONED_RETRIES),
        "error": _error(job, status),
    }
    if with_result:
        info["result"] = job.return_value() if status == "finished" else None
    return info


def list_jobs(conn: redis.Redis, limit: int = 50) -> list[dict[str, Any]]:
    """The most recent jobs first (those still within the retention period)."""
    ids = [i.decode() for i in conn.zrevrange(keys.job_index(), 0, max(limit, 1) - 1)]
    jobs = Job.fetch_many(ids, connection=conn, serializer=SERIALIZER)
    return [describe_job(j, with_result=False) for j in jobs if j is not None]


def wait(conn: redis.Redis, job_id: str, timeout: float | None = None,
         on_log: Callable[[logs.LogEntry], None] | None = None) -> dict[str, Any]:
    """Block until the job is finished, failed or cancelled (riding out Redis restarts); return its info.
    ``on_log`` is given each of the job's log entries as it is written, through the ``end`` event.

    Raises:
        JobNotFound: the job is not (or no longer) in Redis: it expired, or Redis lost its data.
        WorkerError: ``timeout`` seconds passed first.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    after = "0-0"
    while deadline is None or time.monotonic() < deadline:
        try:
            status = conn.hget(f"{Job.redis_job_namespace_prefix}{job_id}", "status")
            if status is None:
                raise JobNotFound(f"no job {job_id} (unknown, expired after the retention period, or lost by a "
                                  "Redis restart)")
            if status.decode() in ("finished", "failed", "stopped", "canceled"):
                if on_log:  # the worker writes the status, then the end event: wait a moment for the rest
                    _drain_log(conn, job_id, after, on_log)
                return job_info(conn, job_id)
            for entry in logs.read(conn, job_id, after=after, block_ms=500):
                after = entry.entry_id
                if on_log:
                    on_log(entry)
        except CONNECTION_ERRORS:
            with_backoff(conn.ping, what=f"wait for job {job_id}", max_wait=300)
    raise WorkerError(f"job {job_id} did not finish within {timeout:g} s")


def _drain_log(conn: redis.Redis, job_id: str, after: str, on_log: Callable[[logs.LogEntry], None],
               seconds: float = 2.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for entry in logs.read(conn, job_id, after=after, block_ms=200):
            after = entry.entry_id
            on_log(entry)
            if entry.is_end:
                return


def cancel(conn: redis.Redis, job_id: str, limits: JobLimits | None = None) -> str:
    """Cancel a job: a queued one is removed from its queue at once (``canceled``); a running one stops
    at its next chunk (``canceling``). A job that already ended is left alone (its status is returned)."""
    lim = limits or job_limits()
    job = fetch_job(conn, job_id)
    status = _status(job)
    if status in FINAL_STATUSES:
        return status
    # The flag first: a job taken by a worker between these lines still sees it before its first chunk.
    conn.set(keys.cancel_flag(job_id), "1", ex=lim.retention_seconds)
    if status in ("queued", "deferred", "scheduled"):
        try:
            job.cancel()
        except Exception:
            return _status(fetch_job(conn, job_id))
        if _status(fetch_job(conn, job_id)) == "canceled":
            job.meta["error"] = "cancelled while queued"
            job.save_meta()
            conn.expire(job.key, lim.retention_seconds)  # RQ keeps a cancelled job forever otherwise
            logs.end(conn, job_id, "canceled", lim.retention_seconds, error="cancelled while queued",
                     text="cancelled while queued")
            return "canceled"
    logs.append(conn, job_id, "cancel requested: stopping at the next chunk", lim.retention_seconds)
    return "canceling"


def fetch_output(conn: redis.Redis, info: dict[str, Any], dest: str | Path) -> Path:
    """Write a finished conversion's output blob to ``dest`` (a file, or a folder for the stored name)."""
    result = info.get("result") or {}
    blob_id = result.get("output_blob")
    if not blob_id:
        raise WorkerError(f"job {info.get('job_id')} has no output")
    dest = Path(dest)
    if dest.is_dir():
        return blobs.save_to(conn, blob_id, dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial")
    tmp.write_bytes(blobs.get(conn, blob_id))
    tmp.replace(dest)
    return dest
