"""Every Redis key and queue name AutoVoice uses, in one place.

RQ's own keys (``rq:job:*``, ``rq:queue:*``, registries, ``rq:workers``) are RQ's business; everything
AutoVoice adds lives under ``autovoice:``.
"""

from __future__ import annotations

import re

PREFIX = "autovoice"

# Queues. Conversions, voice creation and calibration go to the shared queue; engine builds go to one
# queue per (host, GPU model), since an engine only runs on the GPU model it was built for.
CONVERT_QUEUE = "convert"
BUILD_QUEUE_PREFIX = "build"

# Job kinds -> dotted paths of their functions (the studio enqueues by path, never importing the code).
JOB_FUNCTIONS = {
    "convert": "workers.jobs.convert",
    "create_voice": "workers.jobs.create_voice",
    "calibrate": "workers.jobs.calibrate",
    "build_engines": "workers.jobs.build_engines",
}

_SLUG_RE = re.compile(r"[^a-z0-9._-]+")


def slug(text: str) -> str:
    """Lower-case ``text`` with runs of anything but ``[a-z0-9._-]`` collapsed to ``-``."""
    return _SLUG_RE.sub("-", text.lower()).strip("-") or "unknown"


def build_queue(host: str, gpu_model: str) -> str:
    """``build:<host>:<gpu-model-or-cpu>``: the engine-build queue of one host and GPU model."""
    return f"{BUILD_QUEUE_PREFIX}:{slug(host)}:{slug(gpu_model)}"


def is_build_queue(name: str) -> bool:
    return name.startswith(BUILD_QUEUE_PREFIX + ":")


def blob(blob_id: str) -> str:
    """Hash ``{data, name, size, created}`` with the retention TTL."""
    return f"{PREFIX}:blob:{blob_id}"


def job_log(job_id: str) -> str:
    """Capped stream of a job's log lines (and its final ``end`` event)."""
    return f"{PREFIX}:log:{job_id}"


def cancel_flag(job_id: str) -> str:
    """Present while a cancel of a running job is pending; the job polls it between chunks."""
    return f"{PREFIX}:cancel:{job_id}"


def job_index() -> str:
    """Sorted set of job ids scored by enqueue time: the job history, trimmed to the retention period."""
    return f"{PREFIX}:jobs"


def group(group_id: str) -> str:
    """JSON description of a job group (an engine rebuild: one build job per host and GPU model)."""
    return f"{PREFIX}:group:{group_id}"


def worker(name: str) -> str:
    """Heartbeat hash of one worker (host, GPU, memory, backend, loaded engines, current job), with a TTL."""
    return f"{PREFIX}:worker:{name}"


def worker_set() -> str:
    """Names of workers that registered a heartbeat (members whose hash expired are pruned by readers)."""
    return f"{PREFIX}:workers"


def voice(name: str) -> str:
    """Persistent hash of a voice profile: ``meta`` JSON, ``embedding`` float32 bytes, ``clip:N`` WAV bytes."""
    return f"{PREFIX}:voice:{name}"


def voice_set() -> str:
    return f"{PREFIX}:voices"


def calibration(name: str) -> str:
    """Persistent hash of a calibration set: ``meta`` JSON, ``audio:N`` files, ``npz`` once made."""
    return f"{PREFIX}:calibration:{name}"


def calibration_set() -> str:
    return f"{PREFIX}:calibrations"


def engines_version(queue: str) -> str:
    """Counter bumped after each engine build for a build queue; workers reload their engines when it moves."""
    return f"{PREFIX}:engines-version:{queue}"


def build_lock(host: str, gpu_model: str, trt_version: str) -> str:
    """Held while one build runs for a (host, GPU model, TensorRT version)."""
    return f"{PREFIX}:lock:build:{slug(host)}:{slug(gpu_model)}:{slug(trt_version)}"


def sweep_lock() -> str:
    """Held by the worker running the dead-peer sweep, so one sweeps at a time."""
    return f"{PREFIX}:lock:sweep"


def orphan_mark(job_id: str) -> str:
    """First sighting of a queued job that is in no queue and not started (lost between pop and start)."""
    return f"{PREFIX}:orphan:{job_id}"
