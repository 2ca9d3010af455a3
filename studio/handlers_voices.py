"""Voices tab (and the Convert tab's voice list and transpose suggestion): list, listen, create, delete."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import gradio as gr

from studio import audio, catalog, jobs, owners, pitch
from studio.auth import username
from studio.context import Studio
from studio.errors import StudioError, message
from studio.watch import watch
from workers import voices as redis_voices
from workers.enqueue import AUDIO_SUFFIXES
from workers.errors import WorkerError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")  # the engine's voice-name rule (\Z, not $)
COLUMNS = ["name", "source", "median F0 (Hz)", "clips", "seconds", "created", "by"]
SUGGEST_SECONDS = 60.0


class VoicesHandlers:
    """Handlers of the Voices tab, bound to one :class:`Studio`."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    def entries(self) -> list[catalog.VoiceEntry]:
        cfg = self.studio.config
        return catalog.all_voices(self.studio.conn(), cfg.voices_dir, cfg.builtin_voices_dir)

    def table(self) -> list[list[Any]]:
        return [[v.name, catalog.SOURCE_LABELS.get(v.source, v.source),
                 f"{v.median_f0:.1f}" if v.median_f0 else "", v.n_clips, f"{v.seconds:.1f}",
                 time.strftime("%Y-%m-%d %H:%M", time.localtime(v.created)) if v.created else "", v.owner]
                for v in self.entries()]

    def choices(self, current: str | None = None) -> Any:
        """Dropdown choices (label, name), keeping ``current`` when it still exists."""
        entries = self.entries()
        names = [v.name for v in entries]
        value = current if current in names else (names[0] if names else None)
        return gr.update(choices=[(v.label, v.name) for v in entries], value=value)

    def refresh(self, convert_voice: str | None, selected: str | None) -> tuple[Any, Any, list[list[Any]]]:
        """Convert's voice list, the Voices tab's picker, and its table."""
        return self.choices(convert_voice), self.choices(selected), self.table()

    def pick_row(self, evt: gr.SelectData) -> Any:
        """Clicking a row of the voices table picks that voice."""
        row = evt.row_value if isinstance(getattr(evt, "row_value", None), list) else None
        return gr.update(value=row[0]) if row else gr.skip()

    def listen(self, name: str | None) -> Any:
        """The voice's first reference clip, for the player."""
        if not name:
            return None
        try:
            entry = catalog.find(self.studio.conn(), name, self.studio.config.voices_dir,
                                 self.studio.config.builtin_voices_dir)
        except WorkerError:
            return None
        path = catalog.reference_audio(self.studio.conn(), entry, self.studio.job_dir(f"voice-{name}") / "ref.wav")
        return str(path) if path else None

    def delete(self, name: str | None, request: gr.Request) -> tuple[str, Any, Any, list[list[Any]]]:
        """Delete a shared (Redis) voice; with login, only the person who made it may."""
        conn = self.studio.conn()
        try:
            if not name:
                raise StudioError("Pick a voice to delete.")
            if not redis_voices.exists(conn, name):
                raise StudioError(f"{name} is not a shared voice: built-in voices and this host's stored voices "
                                  "cannot be deleted here (use `autovoice voices delete` on that host)")
            owner = owners.voice_owners(conn, [name]).get(name, "")
            user = username(request)
            if self.studio.auth and owner and owner != user:
                raise StudioError(f"{name} was made by {owner}; only they can delete it")
            redis_voices.delete(conn, name)
            owners.forget_voice(conn, name)
            note = f"Deleted voice {name}."
        except WorkerError as exc:
            note = f"**Error**: {message(exc)}"
        return (note, *self.refresh(None, None))

    async def create(self, name: str | None, files: list[Any] | None, request: gr.Request) -> Any:
        """Check the clips, enqueue ``create_voice`` and stream its log; refresh the lists when it ends."""
        name = (name or "").strip()
        paths = [Path(getattr(f, "name", f)) for f in (files or []) if f]
        try:
            if not NAME_RE.match(name):
                raise StudioError("Give the voice a name: 1-64 letters, digits, '.', '_' or '-'.")
            if Path(name).suffix.lower() in AUDIO_SUFFIXES:
                raise StudioError(f"A voice name may not end in {Path(name).suffix}: it would be read as a file.")
            if not paths:
                raise StudioError("Upload one or more reference clips of the voice.")
            for p in paths:
                await asyncio.to_thread(audio.probe, p, 600.0)
            job_id = await asyncio.to_thread(jobs.submit_create_voice, self.studio.conn(), self.studio.limits,
                                             name, [str(p) for p in paths], username(request))
        except WorkerError as exc:
            yield f"error: {message(exc)}", gr.skip(), gr.skip(), gr.skip()
            return
        first = [f"queued create_voice {name} ({len(paths)} clip(s)), job {job_id[:8]}"]
        async for seen in watch(self.studio, {job_id: name}, first):
            if not seen.done:
                yield "\n".join(seen.lines), gr.skip(), gr.skip(), gr.skip()
        tail = f"finished: voice {name} is ready" if seen.ok(job_id) else seen.reason(job_id)
        lines = [*seen.lines, tail]
        yield ("\n".join(lines), *await asyncio.to_thread(self.refresh, None, name))

    def suggest(self, recording: str | None, batch: list[Any] | None, voice: str | None) -> tuple[str, int, str]:
        """Suggested transpose from the source's and the voice's median pitch, and any error with the file."""
        path = Path(getattr(batch[0], "name", batch[0])) if batch else (Path(recording) if recording else None)
        if path is None:
            return "", 0, ""
        try:
            audio.probe(path, self.studio.config.inference.max_input_seconds)
            src = pitch.median_f0(audio.decode(path, pitch.SAMPLE_RATE, max_seconds=SUGGEST_SECONDS))
        except StudioError as exc:
            return "", 0, f"**Error**\n\n- {message(exc)}"
        target = None
        if voice:
            try:
                target = catalog.find(self.studio.conn(), voice, self.studio.config.voices_dir,
                                      self.studio.config.builtin_voices_dir).median_f0
            except WorkerError:
                target = None
        name = f"`{path.name}`"
        if src is None:
            return f"{name}: no clear pitch found (speech or noise?); set the transpose by ear.", 0, ""
        semis = pitch.suggest_transpose(src, target)
        if target is None:
            return f"{name}: median pitch ≈ {src:.0f} Hz; the voice's is unknown: set the transpose by ear.", 0, ""
        return (f"{name}: suggested transpose **{semis:+d}** semitones (source ≈ {src:.0f} Hz, "
                f"voice {voice} ≈ {target:.0f} Hz).", semis, "")
