"""Reading an uploaded zip (calibration audio) without trusting it.

Refused as a whole, before anything is written: entries that leave the archive's folder (``../``,
absolute paths, drive letters), symbolic links, encrypted entries, a name used twice or as both a file
and a folder, more than :data:`MAX_ENTRIES` entries, more than :data:`MAX_TOTAL_BYTES` uncompressed, or
an entry compressed more than :data:`MAX_RATIO` to 1 (a zip bomb). Extraction then counts the bytes it
really writes, so a header that lies about sizes cannot get past the caps either, and an entry that fails
its CRC or does not inflate is refused by name.
"""

from __future__ import annotations

import re
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from engine.errors import AutoVoiceError

MAX_ENTRIES = 1000
MAX_TOTAL_BYTES = 2 * 1024**3
MAX_RATIO = 200
RATIO_MIN_BYTES = 1 << 20  # small entries may compress well legitimately (headers, silence)
CHUNK = 1 << 20
# What reading an entry raises when its data is damaged: a failed CRC, a stream that does not inflate or
# ends early, or a compression method the zipfile module does not have.
CORRUPT_ENTRY_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError)


class UnsafeArchiveError(AutoVoiceError):
    """A zip that could write outside its folder, or is too large to unpack."""


def _safe_name(archive: str, name: str) -> PurePosixPath:
    norm = name.replace("\\", "/")
    path = PurePosixPath(norm)
    if not norm or path.is_absolute() or re.match(r"^[A-Za-z]:", norm) or ".." in path.parts:
        raise UnsafeArchiveError(f"{archive}: entry {name!r} points outside the archive's folder; the zip is "
                                 "refused")
    return path


def check_zip(zf: zipfile.ZipFile, archive: str) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Validate every entry of an open zip; return the file entries with their safe relative paths.

    Raises:
        UnsafeArchiveError: naming the first entry or cap that makes the archive unsafe.
    """
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise UnsafeArchiveError(f"{archive}: {len(infos)} entries is more than the limit of {MAX_ENTRIES}")
    total = 0
    files = []
    for info in infos:
        rel = _safe_name(archive, info.filename)
        kind = (info.external_attr >> 16) & 0o170000
        if kind == stat.S_IFLNK:
            raise UnsafeArchiveError(f"{archive}: entry {info.filename!r} is a symbolic link; the zip is refused")
        if info.flag_bits & 0x1:
            raise UnsafeArchiveError(f"{archive}: entry {info.filename!r} is encrypted; the zip is refused")
        if info.is_dir():
            continue
        total += info.file_size
        if info.file_size > RATIO_MIN_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            ratio = info.file_size // max(info.compress_size, 1)
            raise UnsafeArchiveError(f"{archive}: entry {info.filename!r} expands {ratio} times (limit {MAX_RATIO}); "
                                     "the zip is refused")
        files.append((info, rel))
    _check_layout(archive, files)
    if total > MAX_TOTAL_BYTES:
        raise UnsafeArchiveError(f"{archive}: {total / 1024**3:.1f} GiB uncompressed is more than the limit of "
                                 f"{MAX_TOTAL_BYTES / 1024**3:.0f} GiB")
    return files


def _check_layout(archive: str, files: list[tuple[zipfile.ZipInfo, PurePosixPath]]) -> None:
    """Refuse two entries with one name, and a name that is a file in one entry and a folder in another."""
    seen: dict[PurePosixPath, str] = {}
    for info, rel in files:
        if rel in seen:
            raise UnsafeArchiveError(f"{archive}: entries {seen[rel]!r} and {info.filename!r} have the same name; "
                                     "the zip is refused")
        seen[rel] = info.filename
    for info, rel in files:
        for parent in rel.parents:
            if parent in seen:
                raise UnsafeArchiveError(f"{archive}: {seen[parent]!r} is a file and also the folder of "
                                         f"{info.filename!r}; the zip is refused")


def extract_zip(path: str | Path, dest: str | Path) -> list[Path]:
    """Check ``path`` with :func:`check_zip`, then extract its files under ``dest``; return their paths."""
    path, dest = Path(path), Path(dest)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafeArchiveError(f"{path.name}: not a readable zip file ({exc})") from None
    with zf:
        entries = check_zip(zf, path.name)
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        written = 0
        out = []
        for info, rel in entries:
            target = (root / Path(*rel.parts)).resolve()
            if root not in target.parents:
                raise UnsafeArchiveError(f"{path.name}: entry {info.filename!r} points outside the archive's folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            size = 0
            try:
                with zf.open(info) as src, open(target, "wb") as dst:
                    while block := src.read(CHUNK):
                        size += len(block)
                        written += len(block)
                        if size > info.file_size or written > MAX_TOTAL_BYTES:
                            raise UnsafeArchiveError(f"{path.name}: entry {info.filename!r} is larger than its "
                                                     "header says; the zip is refused")
                        dst.write(block)
            except CORRUPT_ENTRY_ERRORS as exc:
                raise UnsafeArchiveError(f"{path.name}: entry {info.filename!r} is corrupt ({exc}); the zip is "
                                         "refused") from None
            out.append(target)
        return out
