"""Following job logs live: one blocking XREAD (asyncio client) over the streams of several jobs.

A handler that waits here holds no thread and no Gradio worker slot beyond its own event, so many people
can watch their jobs at once. The follower stops at each job's ``end`` event; a job whose stream ended
without one (it expired, or the job was removed) is closed by the caller from the job's RQ status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from workers import keys
from workers.connection import CONNECTION_ERRORS
from workers.logs import END_EVENT, LogEntry

RECONNECT_DELAY = 0.5


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def decode_entry(entry_id: Any, fields: dict[Any, Any]) -> LogEntry:
    """A raw stream entry as a :class:`~workers.logs.LogEntry`."""
    f = {_text(k): _text(v) for k, v in fields.items()}
    try:
        t = float(f.get("t", 0.0))
    except ValueError:
        t = 0.0
    return LogEntry(entry_id=_text(entry_id), time=t, line=f.get("line"), event=f.get("event"),
                    status=f.get("status"), error=f.get("error") or None)


@dataclass
class Followed:
    """One job being followed: where its stream was read up to, and its end event once seen."""

    job_id: str
    after: str = "0-0"
    end: LogEntry | None = None


class LogFollower:
    """Reads the log streams of several jobs, each from where it was left, until every one has ended.

    Args:
        aconn: a ``redis.asyncio.Redis`` client.
        job_ids: the jobs.
        after: per job, the entry id to start after (default: the beginning).
    """

    def __init__(self, aconn: Any, job_ids: Iterable[str], after: dict[str, str] | None = None) -> None:
        self.aconn = aconn
        self.jobs = {j: Followed(j, (after or {}).get(j, "0-0")) for j in job_ids}

    @property
    def done(self) -> bool:
        return all(f.end is not None for f in self.jobs.values())

    def pending(self) -> list[str]:
        return [j for j, f in self.jobs.items() if f.end is None]

    def close(self, job_id: str, status: str, error: str | None = None) -> None:
        """Mark a job ended without an end event in its stream (decided from its RQ status)."""
        f = self.jobs[job_id]
        if f.end is None:
            f.end = LogEntry(entry_id=f.after, time=0.0, event=END_EVENT, status=status, error=error)

    async def read(self, block_ms: int = 500) -> list[tuple[str, LogEntry]]:
        """New entries of the jobs still running, in stream order per job; waits up to ``block_ms``.

        A Redis outage returns no entries (after a short pause) rather than raising: the next call retries.
        """
        streams = {keys.job_log(j): self.jobs[j].after for j in self.pending()}
        if not streams:
            return []
        try:
            res = await self.aconn.xread(streams, block=block_ms)
        except CONNECTION_ERRORS:
            await asyncio.sleep(RECONNECT_DELAY)
            return []
        by_key = {keys.job_log(j): j for j in self.jobs}
        out: list[tuple[str, LogEntry]] = []
        for key, entries in res or []:
            job_id = by_key.get(_text(key))
            if job_id is None:
                continue
            f = self.jobs[job_id]
            for eid, fields in entries:
                if f.end is not None:
                    break
                entry = decode_entry(eid, fields)
                f.after = entry.entry_id
                out.append((job_id, entry))
                if entry.is_end:
                    f.end = entry
        return out


async def last_entry_id(aconn: Any, job_id: str) -> str:
    """The id of the newest entry of a job's log (``0-0`` when it has none): follow a retried job from here."""
    try:
        res = await aconn.xrevrange(keys.job_log(job_id), count=1)
    except CONNECTION_ERRORS:
        return "0-0"
    return _text(res[0][0]) if res else "0-0"
