"""Engines tab: the engines table and the one-click Rebuild that fans out one build job per host and GPU
model, streams every member's log into ``engines-log`` and ends with ``finished`` or ``failed: <reason>``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import gradio as gr

from studio import engines, owners
from studio.auth import username
from studio.context import Studio
from studio.errors import message
from studio.watch import watch
from workers import calibrations
from workers.enqueue import enqueue_rebuild, group_status
from workers.errors import WorkerError

NO_CALIBRATION = "none"


class EnginesHandlers:
    """Handlers of the Engines tab, bound to one :class:`Studio`."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    def table(self) -> list[list[Any]]:
        return engines.rows(self.studio.conn())

    def calibration_choices(self, current: str | None = None) -> Any:
        """Calibration sets that have been calibrated (the ones a build can use), plus ``none``."""
        names = [m["name"] for m in calibrations.list_meta(self.studio.conn()) if m.get("summary") is not None]
        choices = [NO_CALIBRATION, *names]
        return gr.update(choices=choices, value=current if current in choices else NO_CALIBRATION)

    def refresh(self, backend: str | None, calibration: str | None) -> tuple[list[list[Any]], Any, Any]:
        conn = self.studio.conn()
        default = engines.build_backend_default(conn)
        return self.table(), gr.update(value=backend or default), self.calibration_choices(calibration)

    async def rebuild(self, backend: str, precision: str, calibration: str | None, request: gr.Request) -> Any:
        """Enqueue the group (each member owned by the logged-in person), stream its members' logs, and finish
        with the group's combined status."""
        calib = None if not calibration or calibration == NO_CALIBRATION else calibration
        if precision == "int8" and calib is None:
            yield "failed: int8 needs a calibration set: create one in the Calibration tab and pick it here"
            return
        conn = self.studio.conn()
        user, lim = username(request), self.studio.limits
        t0 = time.monotonic()
        try:
            group_id = await asyncio.to_thread(
                enqueue_rebuild, conn, backend, precision, calib, None, lim, by=user,
                before_enqueue=lambda job_id: owners.set_job_owner(conn, job_id, user, lim.retention_seconds))
            status = await asyncio.to_thread(group_status, conn, group_id)
        except WorkerError as exc:
            yield f"failed: {message(exc)}"
            return
        names = {m["job_id"]: str(m["queue"]) for m in status["members"]}
        first = [f"rebuild {backend}/{precision}" + (f" with calibration {calib}" if calib else "") +
                 f": {len(names)} build job(s) on " + ", ".join(names.values())]
        async for seen in watch(self.studio, names, first, prefix=len(names) > 1):
            if not seen.done:
                yield "\n".join(seen.lines)
        try:
            final = await asyncio.to_thread(group_status, conn, group_id)
        except WorkerError as exc:
            final = {"status": "failed", "error": message(exc)}
        lines = list(seen.lines)
        if final["status"] == "finished":
            lines.append(f"finished: {len(names)} build(s) in {time.monotonic() - t0:.1f} s")
        else:
            reason = final.get("error") or "; ".join(f"{names[j]}: {seen.reason(j)}" for j in names if not seen.ok(j))
            lines.append(f"failed: {reason or final['status']}")
        yield "\n".join(lines)
