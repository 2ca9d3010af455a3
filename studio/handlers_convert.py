"""Convert tab: check the uploads, enqueue one job per file, stream their logs and progress, hand back results.

:meth:`ConvertHandlers.convert` is an async generator: while it waits for log lines it sits in a
blocking XREAD on the asyncio client, so it holds no thread, and its event runs without a concurrency
limit: several people's conversions run side by side on the workers.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import gradio as gr

from studio import audio, history, jobs, results
from studio.auth import username
from studio.context import Studio
from studio.convert_view import View, view
from studio.errors import StudioError, message
from studio.watch import watch
from workers import logs as job_logs
from workers.errors import WorkerError

JOB_FORMATS = ("wav", "flac", "ogg")


def _files(recording: str | None, batch: list[Any] | None) -> list[Path]:
    paths = [Path(getattr(f, "name", f)) for f in (batch or []) if f]
    return paths or ([Path(recording)] if recording else [])


class ConvertHandlers:
    """Handlers of the Convert tab, bound to one :class:`Studio`."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    # -- checking uploads -------------------------------------------------------------------------------------
    def check_files(self, files: list[Path]) -> tuple[list[tuple[Path, audio.AudioProbe]], list[str]]:
        good, bad = [], []
        limit = self.studio.config.inference.max_input_seconds
        for path in files:
            try:
                good.append((path, audio.probe(path, limit)))
            except StudioError as exc:
                bad.append(message(exc))
        return good, bad

    def options(self, transpose: float, f0_method: str, fmt: str, sample_rate: str,
                backing: str | None) -> dict[str, Any]:
        """The job's JSON options; a backing track or a format the worker does not write means WAV from the
        worker and the final encoding here."""
        opts: dict[str, Any] = {"transpose": float(transpose or 0.0)}
        if f0_method and f0_method != "default":
            opts["f0_method"] = f0_method
        if sample_rate and str(sample_rate).isdigit():
            opts["sample_rate"] = int(sample_rate)
        opts["format"] = fmt if fmt in JOB_FORMATS and not backing else "wav"
        return opts

    # -- the conversion ---------------------------------------------------------------------------------------
    async def convert(self, recording: str | None, batch: list[Any] | None, voice: str | None, transpose: float,
                      f0_method: str, backend: str, precision: str, fmt: str, sample_rate: str,
                      backing: str | None, backing_gain: float, state: list[dict[str, Any]] | None,
                      request: gr.Request) -> Any:
        """Enqueue the upload(s) and stream progress until every job has ended; then show the results."""
        files = _files(recording, batch)
        if not files:
            yield view(error="Upload or record a recording first.", status="")
            return
        if not voice:
            yield view(error="Pick a voice first.", status="")
            return
        good, bad = await asyncio.to_thread(self.check_files, files)
        if recording and any(f for f in (batch or [])):
            bad.append("the recording was not converted, the batch files were: clear the batch to convert it")
        if backing:
            try:
                await asyncio.to_thread(audio.probe, backing)
            except StudioError as exc:
                yield view(error=f"Instrumental track: {message(exc)}", status="")
                return
        if not good:
            yield view(error="\n".join(f"- {b}" for b in bad), status="Nothing to convert.")
            return
        user = username(request)
        opts = self.options(transpose, f0_method, fmt, sample_rate, backing)
        conn = self.studio.conn()
        submitted: list[tuple[str, Path]] = []
        try:
            for path, _ in good:
                job_id = await asyncio.to_thread(jobs.submit_convert, conn, self.studio.limits, path, voice, opts,
                                                 backend, precision, user)
                submitted.append((job_id, path))
        except WorkerError as exc:
            bad.append(message(exc))
        if not submitted:
            yield view(error="\n".join(f"- {b}" for b in bad), status="Nothing was queued.")
            return
        state = history.add(state, [history.entry(j, p.name, voice) for j, p in reversed(submitted)])
        async for update in self.follow(submitted, state, bad, fmt, backing, backing_gain):
            yield update

    async def follow(self, submitted: list[tuple[str, Path]], state: list[dict[str, Any]], bad: list[str],
                     fmt: str, backing: str | None, backing_gain: float) -> Any:
        """Stream the jobs' log lines and progress; the last update carries the results and any errors."""
        conn = self.studio.conn()
        names = {j: p.name for j, p in submitted}
        first = [f"queued {len(submitted)} job(s): " + ", ".join(f"{names[j]} ({j[:8]})" for j in names)]
        errors = list(bad)
        rows = await asyncio.to_thread(history.rows, conn, state)
        yield view(log=first, status="Queued.", error=_errors(errors), output=None, source=None, files=None,
                   plot=None, state=state, table=rows)
        async for seen in watch(self.studio, names, first):
            if not seen.done:
                yield view(log=seen.lines, status=seen.status)
        outputs, plot, source = [], None, None
        for job_id, path in submitted:
            if not seen.ok(job_id):
                errors.append(f"{names[job_id]}: {seen.reason(job_id)}")
                continue
            try:
                out, f0 = await asyncio.to_thread(self._fetch, job_id, fmt, backing, backing_gain)
            except (WorkerError, OSError) as exc:
                errors.append(f"{names[job_id]}: {message(exc)}")
                continue
            outputs.append(out)
            if plot is None:
                plot, source = f0, str(path)
        files = [str(p) for p in outputs]
        if len(outputs) > 1:
            zip_path = self.studio.work_dir / f"batch-{submitted[0][0]}" / "converted.zip"
            files.append(str(await asyncio.to_thread(results.zip_outputs, outputs, zip_path)))
        rows = await asyncio.to_thread(history.rows, conn, state)
        done = f"Done: {len(outputs)} of {len(submitted)} converted." if outputs else "No output."
        yield view(log=seen.lines, status=done, error=_errors(errors), output=files[0] if outputs else None,
                   source=source, files=files or None, plot=plot, state=state, table=rows)

    def _fetch(self, job_id: str, fmt: str | None, backing: str | None, backing_gain: float) -> tuple[Path, Any]:
        conn = self.studio.conn()
        res = jobs.result(conn, job_id)
        if not res.get("output_blob"):
            raise StudioError(f"job {job_id} finished without an output")
        folder = self.studio.job_dir(job_id)
        out = results.finish_output(results.output_file(conn, res, folder), fmt, backing, float(backing_gain or 0))
        results.prune(self.studio.work_dir)
        return out, results.f0_table(conn, res)

    # -- history ----------------------------------------------------------------------------------------------
    def history_rows(self, state: list[dict[str, Any]] | None) -> list[list[Any]]:
        return history.rows(self.studio.conn(), state)

    def cancel(self, state: list[dict[str, Any]] | None) -> tuple[str, list[list[Any]]]:
        """Cancel this browser's jobs that have not ended (queued ones at once, running ones at their next chunk)."""
        from workers.enqueue import cancel

        conn = self.studio.conn()
        ids = history.active(conn, state)
        if not ids:
            return "Nothing to cancel.", history.rows(conn, state)
        outcomes = [cancel(conn, j, self.studio.limits) for j in ids]
        summary = ", ".join(f"{o}" for o in outcomes)
        return f"Cancel sent to {len(ids)} job(s): {summary}.", history.rows(conn, state)

    def open_result(self, state: list[dict[str, Any]] | None, evt: gr.SelectData) -> View:
        """Load a finished job picked in the history table into the players."""
        ids = history.job_ids(state)
        row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        if not isinstance(row, int) or not 0 <= row < len(ids):
            return view()
        job_id = ids[row]
        conn = self.studio.conn()
        info = jobs.snapshot(conn, [job_id]).get(job_id, {})
        # The page shows this job alone: its log, its result; the original player is this session's upload,
        # which a job from the history does not have, so it is cleared rather than left showing another one.
        shown = {"log": job_logs.lines(conn, job_id), "source": None}
        if info.get("status") != "finished":
            return view(**shown, output=None, files=None, plot=None, error="",
                        status=f"Job {job_id[:8]} is {info.get('status', 'unknown')}: no output to show.")
        try:
            out, f0 = self._fetch(job_id, None, None, 0.0)
        except (WorkerError, OSError) as exc:
            return view(**shown, output=None, files=None, plot=None, error=message(exc))
        return view(**shown, output=str(out), files=[str(out)], plot=f0, error="",
                    status=f"Showing job {job_id[:8]} from the history.")


def _errors(errors: list[str]) -> str:
    return "\n".join(f"- {e}" for e in errors)
