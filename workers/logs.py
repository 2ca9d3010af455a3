"""Job logs: one capped Redis Stream per job, written by the worker, read live with blocking XREAD.

Each entry is ``{t, line}`` (a log line) or ``{t, event: "end", status, error}`` (the job reached a final
state: readers stop there). Writers never fail a job because Redis is briefly away: lines wait in memory,
in order, until Redis answers again.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import redis

from workers import keys
from workers.connection import CONNECTION_ERRORS, with_backoff

LOG_MAXLEN = 5000            # entries kept per job (approximately: XADD MAXLEN ~)
MAX_LINE_CHARS = 2000
END_EVENT = "end"


@dataclass(frozen=True)
class LogEntry:
    entry_id: str
    time: float
    line: str | None = None
    event: str | None = None
    status: str | None = None
    error: str | None = None

    @property
    def is_end(self) -> bool:
        return self.event == END_EVENT


def _fields_line(text: str) -> dict[str, str]:
    return {"t": repr(time.time()), "line": text[:MAX_LINE_CHARS]}


def _fields_end(status: str, error: str | None) -> dict[str, str]:
    return {"t": repr(time.time()), "event": END_EVENT, "status": status, "error": error or ""}


def _xadd_all(conn: redis.Redis, job_id: str, entries: list[dict[str, str]], ttl: int) -> None:
    key = keys.job_log(job_id)
    with conn.pipeline() as pipe:
        for fields in entries:
            pipe.xadd(key, fields, maxlen=LOG_MAXLEN, approximate=True)  # type: ignore[arg-type]
        pipe.expire(key, int(ttl))
        pipe.execute()


class JobLog:
    """The writer of one job's stream; buffers lines while Redis is unreachable and keeps their order."""

    def __init__(self, conn: redis.Redis, job_id: str, ttl: int) -> None:
        self.conn = conn
        self.job_id = job_id
        self.ttl = ttl
        self._pending: deque[dict[str, str]] = deque()
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        """Append a line (multi-line text becomes several lines); never raises for a Redis outage."""
        with self._lock:
            for part in str(text).splitlines() or [""]:
                self._pending.append(_fields_line(part))
        self.flush()

    def flush(self, wait: bool = False, max_wait: float = 120.0) -> bool:
        """Send buffered entries; with ``wait``, retry with backoff until Redis answers (or ``max_wait``)."""
        def send() -> None:
            with self._lock:
                batch = list(self._pending)
                if batch:
                    _xadd_all(self.conn, self.job_id, batch, self.ttl)
                    for _ in batch:
                        self._pending.popleft()

        if wait:
            with_backoff(send, what=f"write the log of job {self.job_id}", max_wait=max_wait)
            return True
        try:
            send()
            return True
        except CONNECTION_ERRORS:
            return False

    def end(self, status: str, error: str | None = None, max_wait: float = 120.0) -> None:
        """Append the final event after any buffered lines, waiting for Redis if need be."""
        with self._lock:
            self._pending.append(_fields_end(status, error))
        self.flush(wait=True, max_wait=max_wait)


def append(conn: redis.Redis, job_id: str, text: str, ttl: int) -> None:
    """Append one line from outside the job (the sweeper, a cancel)."""
    _xadd_all(conn, job_id, [_fields_line(text)], ttl)


def end(conn: redis.Redis, job_id: str, status: str, ttl: int, error: str | None = None,
        text: str | None = None) -> None:
    """Append an optional line and the final event from outside the job."""
    entries = ([_fields_line(text)] if text else []) + [_fields_end(status, error)]
    _xadd_all(conn, job_id, entries, ttl)


def _decode(entry_id: Any, fields: dict[Any, Any]) -> LogEntry:
    f = {(k.decode() if isinstance(k, bytes) else k): (v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
         for k, v in fields.items()}
    eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return LogEntry(entry_id=eid, time=float(f.get("t", 0.0)), line=f.get("line"), event=f.get("event"),
                    status=f.get("status"), error=f.get("error") or None)


def read(conn: redis.Redis, job_id: str, after: str = "0-0", block_ms: int | None = None,
         count: int | None = None) -> list[LogEntry]:
    """Entries after ``after`` (an entry id); with ``block_ms``, wait up to that long for new ones."""
    res = conn.xread({keys.job_log(job_id): after}, count=count, block=block_ms)
    return [_decode(eid, fields) for _, entries in (res or []) for eid, fields in entries]


def lines(conn: redis.Redis, job_id: str) -> list[str]:
    """Every log line of the job so far, in order (events left out)."""
    return [e.line for e in (_decode(eid, f) for eid, f in conn.xrange(keys.job_log(job_id))) if e.line is not None]


def final_event(conn: redis.Redis, job_id: str) -> LogEntry | None:
    """The ``end`` event, if the job has reached a final state."""
    for eid, fields in conn.xrevrange(keys.job_log(job_id), count=5):
        entry = _decode(eid, fields)
        if entry.is_end:
            return entry
    return None


def follow(conn: redis.Redis, job_id: str, after: str = "0-0", block_ms: int = 1000,
           timeout: float | None = None) -> Iterator[LogEntry]:
    """Yield entries as they are written, through the ``end`` event; rides out Redis restarts.

    Args:
        conn: Redis client.
        job_id: the job.
        after: start after this entry id (``"0-0"``: from the beginning).
        block_ms: longest single XREAD BLOCK.
        timeout: stop after this many seconds even without an ``end`` event.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while deadline is None or time.monotonic() < deadline:
        try:
            batch = read(conn, job_id, after=after, block_ms=block_ms)
        except CONNECTION_ERRORS:
            time.sleep(0.5)
            continue
        for entry in batch:
            after = entry.entry_id
            yield entry
            if entry.is_end:
                return


async def afollow(conn: Any, job_id: str, after: str = "0-0", block_ms: int = 1000,
                  timeout: float | None = None) -> AsyncIterator[LogEntry]:
    """:func:`follow` for an asyncio client (``redis.asyncio.Redis``): a blocked read holds no thread."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    key = keys.job_log(job_id)
    while deadline is None or loop.time() < deadline:
        try:
            res = await conn.xread({key: after}, block=block_ms)
        except CONNECTION_ERRORS:
            await asyncio.sleep(0.5)
            continue
        for _, entries in res or []:
            for eid, fields in entries:
                entry = _decode(eid, fields)
                after = entry.entry_id
                yield entry
                if entry.is_end:
                    return


def to_json(entry: LogEntry) -> str:
    return json.dumps({k: v for k, v in entry.__dict__.items() if v is not None})
