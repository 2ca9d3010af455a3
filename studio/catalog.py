"""The voices a conversion can use: voices in Redis (any worker can use them), this host's stored voices,
and the built-in demo voices shipped beside the demo model (read from their ``profile.json``, no engine)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from studio import owners
from workers import voices as redis_voices
from workers.errors import VoiceNotFound

SOURCES = ("redis", "user", "builtin")
SOURCE_LABELS = {"redis": "shared", "user": "this host", "builtin": "built-in"}


@dataclass(frozen=True)
class VoiceEntry:
    name: str
    source: str                 # redis | user | builtin
    median_f0: float | None
    n_clips: int
    seconds: float
    created: float
    owner: str = ""
    folder: Path | None = None  # on-disk voices only

    @property
    def label(self) -> str:
        f0 = f", {self.median_f0:.0f} Hz" if self.median_f0 else ""
        return f"{self.name} ({SOURCE_LABELS.get(self.source, self.source)}{f0})"


def _from_meta(meta: dict[str, Any], source: str, folder: Path | None = None, owner: str = "") -> VoiceEntry:
    f0 = meta.get("median_f0")
    return VoiceEntry(name=str(meta.get("name") or (folder.name if folder else "?")), source=source,
                      median_f0=float(f0) if f0 else None, n_clips=int(meta.get("n_clips") or 0),
                      seconds=float(meta.get("seconds") or 0.0), created=float(meta.get("created") or 0.0),
                      owner=owner, folder=folder)


def disk_voices(folder: Path, source: str) -> list[VoiceEntry]:
    """Voices stored as ``<folder>/<name>/profile.json`` (unreadable ones are skipped)."""
    out = []
    if folder.is_dir():
        for sub in sorted(folder.iterdir()):
            profile = sub / "profile.json"
            if profile.is_file():
                try:
                    out.append(_from_meta(json.loads(profile.read_text()), source, sub))
                except (OSError, ValueError):
                    continue
    return out


def all_voices(conn: redis.Redis, user_dir: Path, builtin_dir: Path) -> list[VoiceEntry]:
    """Every voice by name, Redis first (the order a worker looks them up in), without duplicates."""
    metas = redis_voices.list_meta(conn)
    who = owners.voice_owners(conn, [str(m.get("name")) for m in metas])
    found = [_from_meta(m, "redis", owner=who.get(str(m.get("name")), "")) for m in metas]
    found += disk_voices(user_dir, "user") + disk_voices(builtin_dir, "builtin")
    seen: dict[str, VoiceEntry] = {}
    for v in found:
        seen.setdefault(v.name, v)
    return list(seen.values())


def find(conn: redis.Redis, name: str, user_dir: Path, builtin_dir: Path) -> VoiceEntry:
    for v in all_voices(conn, user_dir, builtin_dir):
        if v.name == name:
            return v
    raise VoiceNotFound(f"no voice named {name!r}")


def reference_audio(conn: redis.Redis, entry: VoiceEntry, dest: Path) -> Path | None:
    """Write the voice's first reference clip to ``dest`` (a .wav path); ``None`` if it has none.

    On-disk clips are copied too: Gradio serves files only from its allowed folders (the temp folder).
    """
    if entry.source == "redis":
        try:
            clips = redis_voices.clips(conn, entry.name)
        except VoiceNotFound:
            return None
        data = clips[0] if clips else None
    else:
        refs = sorted(entry.folder.glob("reference_*.wav")) if entry.folder else []
        data = refs[0].read_bytes() if refs else None
    if data is None:
        return None
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    return dest
