"""Watching jobs until they end: their log lines as they are written, plus a progress line whenever their
place in line or progress changes. Shared by every tab that starts jobs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from studio import jobs
from studio.context import Studio
from studio.streaming import LogFollower
from workers.connection import CONNECTION_ERRORS
from workers.enqueue import FINAL_STATUSES
from workers.logs import LogEntry

POLL_SECONDS = 1.0
READ_BLOCK_MS = 400
FINAL_GRACE_POLLS = 3   # polls a job may sit in a final RQ status before its stream's end event shows up


@dataclass
class Watch:
    """What has been seen so far; ``done`` once every job has ended."""

    lines: list[str] = field(default_factory=list)
    status: str = ""
    ends: dict[str, LogEntry | None] = field(default_factory=dict)
    done: bool = False

    def ok(self, job_id: str) -> bool:
        end = self.ends.get(job_id)
        return end is not None and end.status == "finished"

    def reason(self, job_id: str) -> str:
        end = self.ends.get(job_id)
        if end is None:
            return "did not end"
        return f"{end.status}: {end.error}" if end.error else str(end.status)


def _poll(studio: Studio, job_ids: list[str]) -> tuple[dict[str, Any], dict[str, int | None], dict[str, int],
                                                       float | None]:
    conn = studio.conn()
    infos = jobs.snapshot(conn, job_ids)
    positions: dict[str, int | None] = {}
    workers: dict[str, int] = {}
    for queue in sorted({str(i.get("queue")) for i in infos.values() if i.get("queue")}):
        ids = [j for j, i in infos.items() if i.get("queue") == queue]
        positions.update(jobs.queue_positions(conn, ids, queue))
        workers[queue] = jobs.serving_workers(conn, queue)
    kinds = {i.get("kind") for i in infos.values()}
    avg = jobs.average_run_seconds(conn, str(kinds.pop())) if len(kinds) == 1 else None
    return infos, positions, workers, avg


async def watch(studio: Studio, names: dict[str, str], lines: list[str] | None = None,
                prefix: bool | None = None) -> AsyncIterator[Watch]:
    """Yield the growing :class:`Watch` of the jobs ``names`` (id -> label) whenever something changed.

    Args:
        studio: the studio.
        names: job id -> label for its lines.
        lines: lines to start the log with.
        prefix: put ``[label]`` before each line (default: when there are several jobs).
    """
    state = Watch(lines=list(lines or []))
    prefix = len(names) > 1 if prefix is None else prefix
    follower = LogFollower(studio.aconn(), names)
    last_poll, seen_final = 0.0, dict.fromkeys(names, 0)
    said = dict.fromkeys(names, "")
    last_line = dict.fromkeys(names, "")

    def tag(job_id: str) -> str:
        return f"[{names[job_id]}] " if prefix else ""

    while not follower.done:
        changed = False
        for job_id, entry in await follower.read(READ_BLOCK_MS):
            if entry.line is not None:
                state.lines.append(tag(job_id) + entry.line)
                last_line[job_id] = entry.line
            elif entry.is_end:
                final = (entry.status or "ended") + (f": {entry.error}" if entry.error else "")
                if final != last_line[job_id]:  # the worker often said it already
                    state.lines.append(tag(job_id) + final)
            changed = True
        if time.monotonic() - last_poll >= POLL_SECONDS:
            last_poll = time.monotonic()
            try:
                infos, positions, workers, avg = await asyncio.to_thread(_poll, studio, follower.pending())
            except CONNECTION_ERRORS:  # Redis restarting: the log reader waits it out too
                state.status = "Redis is not answering; waiting for it to come back"
                yield state
                continue
            notes = []
            for job_id in follower.pending():
                info = infos.get(job_id, {})
                note = jobs.describe_progress(info, positions.get(job_id), workers.get(str(info.get("queue")), 0), avg)
                notes.append((f"{names[job_id]}: " if prefix else "") + note)
                key = note.split(", ETA")[0]
                if key != said[job_id] and info.get("status") not in FINAL_STATUSES:
                    said[job_id] = key
                    state.lines.append(tag(job_id) + note)
                if info.get("status") in FINAL_STATUSES + ("expired",):
                    seen_final[job_id] += 1
                    if seen_final[job_id] >= FINAL_GRACE_POLLS:
                        follower.close(job_id, str(info.get("status")), info.get("error"))
                        state.lines.append(tag(job_id) + f"{info.get('status')}" +
                                           (f": {info.get('error')}" if info.get("error") else ""))
            state.status = "; ".join(notes) or state.status
            changed = True
        if changed and not follower.done:
            yield state
    state.ends = {j: f.end for j, f in follower.jobs.items()}
    state.done = True
    yield state
