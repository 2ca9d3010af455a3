"""Voice profiles: a name, the averaged speaker embedding of its reference clips, and their median F0.

Stored as ``<voices_dir>/<name>/{profile.json, embedding.npy, reference_NN.wav}``; the embedding is read
with ``allow_pickle=False``. Built-in voices ship with the demo model; user voices live in the data dir.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.audio import load_clip
from engine.errors import VoiceError
from engine.f0 import extract_f0, median_f0
from engine.speaker import EMBEDDING_DIM, SAMPLE_RATE, SpeakerEncoder

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")  # \Z: "$" also matches before a final newline
MAX_REFERENCE_SECONDS = 120.0
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


@dataclass
class VoiceProfile:
    name: str
    embedding: np.ndarray  # [256], L2-normalised
    median_f0: float | None
    n_clips: int = 1
    seconds: float = 0.0
    created: float = 0.0
    source: str = "user"

    def describe(self) -> dict[str, object]:
        d = asdict(self)
        d.pop("embedding")
        return d


def validate_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise VoiceError(f"invalid voice name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    if Path(name).suffix.lower() in AUDIO_SUFFIXES:
        raise VoiceError(f"invalid voice name {name!r}: a name ending in {Path(name).suffix} would be read as a "
                         "reference file")
    return name


def profile_from_clips(name: str, clips: Sequence[np.ndarray], encoder: SpeakerEncoder | None = None,
                       hop: int = 160, source: str = "user") -> VoiceProfile:
    """Embed 16 kHz clips and measure their pitch."""
    encoder = encoder or SpeakerEncoder.shared()
    embedding = encoder.embed_clips(clips)
    f0 = np.concatenate([extract_f0(c, SAMPLE_RATE, hop) for c in clips])
    return VoiceProfile(name=name, embedding=embedding, median_f0=median_f0(f0), n_clips=len(clips),
                        seconds=float(sum(len(c) for c in clips)) / SAMPLE_RATE, created=time.time(),
                        source=source)


class VoiceStore:
    """Profiles on disk, looked up in the user directory first, then the built-in one."""

    def __init__(self, user_dir: str | Path, builtin_dir: str | Path | None = None) -> None:
        self.user_dir = Path(user_dir)
        self.builtin_dir = Path(builtin_dir) if builtin_dir else None

    def _dirs(self) -> list[tuple[str, Path]]:
        dirs = [("user", self.user_dir)]
        if self.builtin_dir is not None:
            dirs.append(("builtin", self.builtin_dir))
        return dirs

    def names(self) -> list[str]:
        seen: dict[str, None] = {}
        for _, d in self._dirs():
            if d.is_dir():
                for p in sorted(d.iterdir()):
                    if (p / "profile.json").is_file():
                        seen.setdefault(p.name, None)
        return list(seen)

    def profiles(self) -> list[VoiceProfile]:
        """Every readable voice; one that cannot be read is left out with a warning naming why."""
        out = []
        for name in self.names():
            try:
                out.append(self.get(name))
            except VoiceError as exc:
                log.warning("%s", exc)
        return out

    def get(self, name: str) -> VoiceProfile:
        validate_name(name)
        for source, d in self._dirs():
            folder = d / name
            if (folder / "profile.json").is_file():
                return self._read(folder, source)
        raise VoiceError(f"no voice named {name!r}; known voices: {', '.join(self.names()) or 'none'}")

    def references(self, name: str) -> list[Path]:
        for _, d in self._dirs():
            if (d / name / "profile.json").is_file():
                return sorted((d / name).glob("reference_*.wav"))
        raise VoiceError(f"no voice named {name!r}")

    @staticmethod
    def _read(folder: Path, source: str) -> VoiceProfile:
        try:
            meta = json.loads((folder / "profile.json").read_text())
            emb = np.load(folder / "embedding.npy", allow_pickle=False)
            median = meta.get("median_f0")
            profile = VoiceProfile(name=str(meta["name"]), embedding=emb, median_f0=None if median is None
                                   else float(median), n_clips=int(meta.get("n_clips", 1)),
                                   seconds=float(meta.get("seconds", 0.0)), created=float(meta.get("created", 0.0)),
                                   source=source)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise VoiceError(f"voice {folder.name}: its profile in {folder} is unreadable ({exc}); delete it and "
                             "add it again") from None
        if emb.shape != (EMBEDDING_DIM,) or not np.all(np.isfinite(emb)):
            raise VoiceError(f"voice {folder.name}: embedding.npy is not a finite {EMBEDDING_DIM}-vector")
        profile.embedding = emb.astype(np.float32)
        return profile

    def save(self, profile: VoiceProfile, clips: Sequence[np.ndarray]) -> Path:
        """Write atomically: a temp folder renamed into place (replacing an older profile of that name)."""
        validate_name(profile.name)
        self.user_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{profile.name}.", dir=self.user_dir))
        try:
            np.save(tmp / "embedding.npy", profile.embedding.astype(np.float32), allow_pickle=False)
            for i, clip in enumerate(clips):
                sf.write(str(tmp / f"reference_{i:02d}.wav"), clip, SAMPLE_RATE, subtype="PCM_16")
            meta = profile.describe() | {"source": "user"}
            (tmp / "profile.json").write_text(json.dumps(meta, indent=2))
            final = self.user_dir / profile.name
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
            return final
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def check_new_name(self, name: str) -> str:
        """``name`` if a new voice may take it: valid, and not a built-in voice's (it would hide that one)."""
        validate_name(name)
        if self.builtin_dir is not None and (self.builtin_dir / name / "profile.json").is_file():
            raise VoiceError(f"{name!r} is a built-in voice; give the new voice another name")
        return name

    def add(self, name: str, paths: Sequence[str | Path],
            encoder: SpeakerEncoder | None = None) -> VoiceProfile:
        """Create the user voice ``name`` (replacing a user voice of that name; a built-in one is refused)."""
        self.check_new_name(name)
        clips = [load_clip(p, SAMPLE_RATE, MAX_REFERENCE_SECONDS) for p in paths]
        profile = profile_from_clips(name, clips, encoder)
        self.save(profile, clips)
        return profile

    def delete(self, name: str) -> None:
        if not NAME_RE.match(name or ""):  # not validate_name: a voice made before a rule tightened can go
            raise VoiceError(f"invalid voice name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
        folder = self.user_dir / name
        if not (folder / "profile.json").is_file():
            raise VoiceError(f"no user voice named {name!r} (built-in voices cannot be deleted)")
        shutil.rmtree(folder)



def default_store(cfg: object) -> VoiceStore:
    """The store of a config: user voices in the data dir, built-in ones beside the demo model."""
    return VoiceStore(cfg.voices_dir, cfg.builtin_voices_dir)  # type: ignore[attr-defined]


def resolve_voice(spec: str, store: VoiceStore) -> VoiceProfile:
    """``spec`` is a reference audio file (embedded on the fly) or the name of a stored voice."""
    path = Path(spec)
    if path.suffix.lower() in AUDIO_SUFFIXES and not path.exists():
        raise VoiceError(f"voice {spec!r}: no such reference file (voice names never end in {path.suffix})")
    if path.suffix.lower() in AUDIO_SUFFIXES or path.is_file():
        clip = load_clip(path, SAMPLE_RATE, MAX_REFERENCE_SECONDS)
        return profile_from_clips(path.stem if NAME_RE.match(path.stem) else "reference", [clip],
                                  source="file")
    return store.get(spec)
