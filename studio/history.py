"""This browser's conversions: entries kept in ``gr.BrowserState`` (only ids and labels), shown with their
live status, place in the queue and ETA read from Redis. No browser ever sees another's job ids."""

from __future__ import annotations

import time
from typing import Any

import redis

from studio import jobs
from workers.enqueue import FINAL_STATUSES

MAX_ENTRIES = 50
COLUMNS = ["submitted", "file", "voice", "status", "queue", "ETA", "worker", "seconds", "error", "job"]
ACTIVE = ("queued", "started", "deferred", "scheduled", "canceling")


def add(history: list[dict[str, Any]] | None, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """New entries first, capped at :data:`MAX_ENTRIES`."""
    return (list(entries) + [h for h in (history or []) if isinstance(h, dict)])[:MAX_ENTRIES]


def entry(job_id: str, name: str, voice: str) -> dict[str, Any]:
    return {"job_id": job_id, "name": name, "voice": voice, "submitted": time.time()}


def job_ids(history: list[dict[str, Any]] | None) -> list[str]:
    return [str(h["job_id"]) for h in (history or []) if isinstance(h, dict) and h.get("job_id")]


def rows(conn: redis.Redis, history: list[dict[str, Any]] | None) -> list[list[Any]]:
    """One row per entry: status, queue position and ETA as Redis has them now."""
    ids = job_ids(history)
    if not ids:
        return []
    infos = jobs.snapshot(conn, ids)
    positions = jobs.queue_positions(conn, ids)
    waiting = any(i.get("status") in ACTIVE for i in infos.values())
    workers = jobs.serving_workers(conn) if waiting else 0
    avg = jobs.average_run_seconds(conn) if waiting else None
    out = []
    for h in history or []:
        info = infos.get(str(h.get("job_id")), {})
        status = str(info.get("status", "?"))
        progress = info.get("progress") or {}
        if status == "started" and progress:
            status = f"running: {progress.get('stage', '')} {int(100 * float(progress.get('fraction') or 0))}%"
        eta = jobs.eta_seconds(info, positions.get(str(h.get("job_id"))), workers, avg) \
            if info.get("status") in ACTIVE else None
        seconds = info.get("run_seconds")
        out.append([time.strftime("%H:%M:%S", time.localtime(float(h.get("submitted") or 0))), h.get("name", ""),
                    h.get("voice", ""), status, jobs.place(positions.get(str(h.get("job_id")))), jobs.format_eta(eta),
                    info.get("worker") or "", f"{seconds:.1f}" if seconds else "", info.get("error") or "",
                    h.get("job_id", "")])
    return out


def active(conn: redis.Redis, history: list[dict[str, Any]] | None) -> list[str]:
    """Ids of this browser's jobs that have not ended yet."""
    infos = jobs.snapshot(conn, job_ids(history))
    return [j for j, i in infos.items() if i.get("status") not in FINAL_STATUSES + ("expired",)]
