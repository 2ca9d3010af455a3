"""Workers tab: live workers and queues (refreshed by a ``gr.Timer``), recent failures and a retry."""

from __future__ import annotations

import time
from typing import Any

import gradio as gr

from studio import jobs, owners
from studio.context import Studio
from studio.errors import message
from workers.errors import WorkerError
from workers.status import live_workers, queues, recent_failures

WORKER_COLUMNS = ["worker", "host", "GPU", "state", "current job", "heartbeat age (s)", "backend", "threads",
                  "done", "failed"]
QUEUE_COLUMNS = ["queue", "waiting", "running", "no heartbeat", "finished", "failed"]  # no heartbeat: worker gone
FAILED_COLUMNS = ["ended", "job", "kind", "queue", "worker", "by", "error"]
FAILED_SHOWN = 20


class WorkersHandlers:
    """Handlers of the Workers tab, bound to one :class:`Studio`."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    def workers_table(self) -> list[list[Any]]:
        now = time.time()
        out = []
        for w in live_workers(self.studio.conn()):
            age = now - float(w.get("last_seen") or now)
            gpu = w.get("gpu", "?")
            if w.get("gpu_index") not in (None, ""):
                gpu = f"{gpu} (GPU {w['gpu_index']}, {w.get('memory_mb', '?')} MB)"
            out.append([w.get("name"), w.get("host"), gpu, w.get("state", "?"), w.get("current_job") or "",
                        f"{max(age, 0.0):.1f}", f"{w.get('backend', '?')}/{w.get('precision', '?')}",
                        w.get("threads", ""), w.get("jobs_done", ""), w.get("jobs_failed", "")])
        return out

    def queues_table(self) -> list[list[Any]]:
        return [[q["name"], q["waiting"], q["started"], q["stalled"], q["finished"], q["failed"]]
                for q in queues(self.studio.conn())]

    def failed(self) -> list[dict[str, Any]]:
        return recent_failures(self.studio.conn(), FAILED_SHOWN)

    def failed_table(self, failures: list[dict[str, Any]]) -> list[list[Any]]:
        who = owners.job_owners(self.studio.conn(), [f["job_id"] for f in failures])
        return [[time.strftime("%H:%M:%S", time.localtime(float(f["ended_at"]))) if f.get("ended_at") else "",
                 f["job_id"], f.get("kind") or "", f.get("queue") or "", f.get("worker") or "",
                 who.get(f["job_id"], ""), f.get("error") or ""] for f in failures]

    def refresh(self, selected: str | None) -> tuple[list[list[Any]], list[list[Any]], list[list[Any]], Any]:
        """Everything the tab shows; the retry picker keeps its choice while that job is still listed."""
        failures = self.failed()
        ids = [f["job_id"] for f in failures]
        choices = [(f"{f['job_id'][:8]} {f.get('kind') or ''}: {(f.get('error') or '')[:60]}", f["job_id"])
                   for f in failures]
        value = selected if selected in ids else (ids[0] if ids else None)
        return (self.workers_table(), self.queues_table(), self.failed_table(failures),
                gr.update(choices=choices, value=value))

    def pick(self, evt: gr.SelectData) -> Any:
        """Clicking a row of the failed jobs picks it for retry."""
        row = evt.row_value if isinstance(getattr(evt, "row_value", None), list) else None
        return gr.update(value=row[1]) if row and len(row) > 1 else gr.skip()

    def retry(self, job_id: str | None) -> tuple[str, list[list[Any]], list[list[Any]], list[list[Any]], Any]:
        """Requeue the picked failed job (its inputs must still be within the retention period)."""
        if not job_id:
            note = "No failed job picked."
        else:
            try:
                queue = jobs.retry(self.studio.conn(), job_id, self.studio.limits)
                note = f"Job {job_id[:8]} is back in the {queue} queue."
            except WorkerError as exc:
                note = f"**Error**: {message(exc)}"
        return (note, *self.refresh(None))
