"""Errors of the job queue. Each :class:`WorkerError` carries one message meant for the user."""

from __future__ import annotations


class WorkerError(Exception):
    """Base class: printed by the CLI as one line, without a traceback."""


class RedisUnavailable(WorkerError):
    """Redis cannot be reached (after retrying with backoff)."""


class QueueFull(WorkerError):
    """A queue holds ``max_queue_length`` waiting jobs: busy, try again later."""


class JobNotFound(WorkerError):
    """No job with that id (never existed, or expired after the retention period)."""


class BlobError(WorkerError):
    """A blob is missing (expired), or too large to store."""


class VoiceNotFound(WorkerError):
    """No voice of that name in Redis or among this host's stored voices."""


class CalibrationNotFound(WorkerError):
    """No calibration set of that name in Redis."""


class JobInterrupted(Exception):
    """Raised inside a running job when its worker is shutting down: the job is requeued, not failed."""


class LeaseLost(JobInterrupted):
    """Raised inside a running job whose lease expired and was handed to another worker: stop, record nothing."""
