"""Calibration tab: check an upload (summary in ``calibration-summary``), store the accepted audio as a
named set and run its ``calibrate`` job, whose NPZ an INT8 rebuild can then use."""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import gradio as gr

from studio import owners
from studio.auth import username
from studio.calibration_check import Checked, check_upload
from studio.context import Studio
from studio.errors import StudioError, message
from studio.watch import watch
from workers import calibrations
from workers.enqueue import enqueue
from workers.errors import WorkerError

COLUMNS = ["name", "files", "MB", "created", "calibrated"]


class CalibrationHandlers:
    """Handlers of the Calibration tab, bound to one :class:`Studio`."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    def check(self, files: list[Any] | None) -> tuple[Checked, Path]:
        paths = [Path(getattr(f, "name", f)) for f in (files or []) if f]
        work = self.studio.job_dir(f"calibration-{uuid.uuid4().hex}")
        cfg = self.studio.config
        return check_upload(paths, work, cfg.quantization.crop_seconds, self.studio.limits.max_blob_bytes), work

    def summary(self, files: list[Any] | None) -> str:
        """The validation summary shown as soon as files are uploaded."""
        if not files:
            return ""
        checked, work = self.check(files)
        shutil.rmtree(work, ignore_errors=True)
        return checked.summary()

    def table(self) -> list[list[Any]]:
        out = []
        for m in calibrations.list_meta(self.studio.conn()):
            calibrated = m.get("calibrated")
            out.append([m.get("name"), m.get("files"), f"{float(m.get('bytes') or 0) / 2**20:.1f}",
                        time.strftime("%Y-%m-%d %H:%M", time.localtime(float(m.get("created") or 0))),
                        time.strftime("%Y-%m-%d %H:%M", time.localtime(float(calibrated))) if calibrated else "no"])
        return out

    async def create(self, name: str | None, files: list[Any] | None, request: gr.Request) -> Any:
        """Store the accepted files as the set ``name``, enqueue ``calibrate`` and stream its log."""
        name = (name or "").strip()
        work: Path | None = None
        try:
            calibrations.validate_name(name)
            if not files:
                raise StudioError("Upload audio files or one zip first.")
            checked, work = await asyncio.to_thread(self.check, files)
            if not checked.accepted:
                yield checked.summary(), "failed: no usable files", gr.skip()
                return
            job_id = await asyncio.to_thread(self._store_and_enqueue, name, checked, username(request))
        except WorkerError as exc:
            yield gr.skip(), f"failed: {message(exc)}", gr.skip()
            return
        finally:
            if work is not None:
                shutil.rmtree(work, ignore_errors=True)
        first = [f"calibration set {name}: {len(checked.accepted)} file(s) stored; calibrate job {job_id[:8]}"]
        summary = checked.summary() + f"\n\nCreating calibration set **{name}**."
        yield summary, "\n".join(first), await asyncio.to_thread(self.table)
        async for seen in watch(self.studio, {job_id: name}, first):
            if not seen.done:
                yield gr.skip(), "\n".join(seen.lines), gr.skip()
        tail = f"finished: calibration set {name} is ready" if seen.ok(job_id) else seen.reason(job_id)
        yield gr.skip(), "\n".join([*seen.lines, tail]), await asyncio.to_thread(self.table)

    def _store_and_enqueue(self, name: str, checked: Checked, user: str) -> str:
        conn = self.studio.conn()
        lim = self.studio.limits
        calibrations.store_audio(conn, name, [(fname, path.read_bytes()) for path, _, fname in checked.accepted],
                                 lim.max_blob_bytes)
        job_id = uuid.uuid4().hex
        owners.set_job_owner(conn, job_id, user, lim.retention_seconds)
        by = f" by {user}" if user else ""
        return enqueue(conn, "calibrate", {"name": name}, limits=lim, description=f"calibrate {name}{by}",
                       job_id=job_id)
