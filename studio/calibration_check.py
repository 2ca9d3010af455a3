"""Checking a calibration upload before it is stored: audio files, or one zip read safely.

Each file is accepted or rejected with a reason (not audio, too short for a calibration crop, no pitched
voice in it); a zip whose entries escape its folder, are links, or are too many or too large is refused
whole. Only accepted files are stored, so the ``calibrate`` job gets a clean set.
"""

from __future__ import annotations

import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from studio import audio, pitch
from studio.errors import StudioError, message

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".m4a")
MAX_FILES = 1000
# What reading a damaged entry raises (as engine.export.safe_zip.CORRUPT_ENTRY_ERRORS; the studio imports
# no engine module beyond its config).
CORRUPT_ENTRY_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError)
MAX_SECONDS = 600.0
PITCH_CHECK_SECONDS = 30.0


@dataclass
class Checked:
    """The outcome: accepted files (with their lengths) and rejected ones with reasons."""

    accepted: list[tuple[Path, float, str]] = field(default_factory=list)   # (file, seconds, name)
    rejected: list[tuple[str, str]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(s for _, s, _ in self.accepted)

    def summary(self) -> str:
        """Markdown for ``calibration-summary``."""
        total = self.seconds
        lines = [f"**{len(self.accepted)} file(s) accepted**, total duration {int(total // 60)} min "
                 f"{total % 60:.1f} s; **{len(self.rejected)} rejected**."]
        lines += [f"- rejected `{name}`: {why}" for name, why in self.rejected]
        if not self.accepted:
            lines.append("\nNothing usable: upload sung or spoken recordings of at least a few seconds each.")
        return "\n".join(lines)


def _safe_member(info: zipfile.ZipInfo) -> str:
    """The entry's path, refusing absolute paths, ``..`` and links (the whole zip is refused)."""
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
        raise StudioError(f"unsafe zip: the entry {info.filename!r} points outside the zip's folder")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise StudioError(f"unsafe zip: the entry {info.filename!r} is a link")
    return name


def extract_zip(path: Path, dest: Path, max_bytes: int) -> tuple[list[tuple[Path, str]], list[tuple[str, str]]]:
    """Extract a zip's audio entries into ``dest`` (flat, numbered names); other entries are rejected.

    Returns:
        ``(extracted path, entry name)`` pairs, and ``(entry name, reason)`` of the rejected entries.

    Raises:
        StudioError: not a zip, unsafe entries, more than :data:`MAX_FILES` entries or ``max_bytes`` in all.
    """
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise StudioError(f"{path.name} is not a readable zip ({exc})") from None
    files, rejected = [], []
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        names = [_safe_member(i) for i in infos]
        if len(infos) > MAX_FILES:
            raise StudioError(f"{path.name}: {len(infos)} entries, more than the limit of {MAX_FILES}")
        total = sum(i.file_size for i in infos)
        if total > max_bytes:
            raise StudioError(f"{path.name}: {total / 2**20:.0f} MB uncompressed, more than the limit of "
                              f"{max_bytes / 2**20:.0f} MB (jobs.max_blob_mb)")
        dest.mkdir(parents=True, exist_ok=True)
        for n, (info, name) in enumerate(zip(infos, names, strict=True)):
            base = PurePosixPath(name).name
            if name.startswith("__MACOSX/") or base.startswith("."):
                continue
            if PurePosixPath(base).suffix.lower() not in AUDIO_SUFFIXES:
                rejected.append((name, "not an audio file (by its name)"))
                continue
            out = dest / f"{n:04d}_{base}"
            try:
                with zf.open(info) as src, out.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
            except CORRUPT_ENTRY_ERRORS as exc:
                out.unlink(missing_ok=True)
                rejected.append((name, f"corrupt in the zip ({exc})"))
                continue
            files.append((out, name))
    return files, rejected


def check_file(path: Path, display: str, min_seconds: float, result: Checked) -> None:
    """Accept ``path`` into ``result``, or reject it (named ``display``) with the reason."""
    try:
        info = audio.probe(path, MAX_SECONDS, label=display)
        if info.seconds < min_seconds:
            raise StudioError(f"too short ({info.seconds:.1f} s; calibration crops are {min_seconds:.1f} s)")
        if pitch.median_f0(audio.decode(path, pitch.SAMPLE_RATE, max_seconds=PITCH_CHECK_SECONDS)) is None:
            raise StudioError("no pitched voice found (silence or noise?)")
    except StudioError as exc:
        text = message(exc)
        result.rejected.append((display, text[len(display):].lstrip(": ") if text.startswith(display) else text))
        return
    result.accepted.append((path, info.seconds, display.rsplit(":", 1)[-1].rsplit("/", 1)[-1]))


def check_upload(paths: list[Path], work: Path, min_seconds: float, max_bytes: int) -> Checked:
    """Check uploaded files (zips are opened); accepted files end up as paths (zip entries under ``work``)."""
    result = Checked()
    for i, path in enumerate(paths):
        if path.suffix.lower() == ".zip":
            try:
                members, rejected = extract_zip(path, work / f"zip{i}", max_bytes)
            except StudioError as exc:
                result.rejected.append((path.name, message(exc)))
                continue
            result.rejected += [(f"{path.name}:{n}", why) for n, why in rejected]
            for member, entry in members:
                check_file(member, f"{path.name}:{entry}", min_seconds, result)
        else:
            check_file(path, path.name, min_seconds, result)
    return result
