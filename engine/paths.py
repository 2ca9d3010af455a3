"""Where a command may write a new file: checked before any work, so a mistake costs a second, not a run."""

from __future__ import annotations

from pathlib import Path

from engine.errors import AutoVoiceError


def check_new_file(path: str | Path, example: str, error: type[AutoVoiceError] = AutoVoiceError) -> Path:
    """Refuse ``path`` as the place for a new file (written beside it, then renamed over it) when it is a
    folder, something other than a regular file (a device would be replaced), or under a file; ``example``
    names such a file for the message."""
    p = Path(path)
    if p.is_dir():
        raise error(f"{p} is a folder; give the {Path(example).stem} file's path, e.g. {p / example}")
    if p.exists() and not p.is_file():
        raise error(f"{p} is not a regular file; it is not replaced")
    blocking = next((q for q in p.parents if q.exists() and not q.is_dir()), None)
    if blocking is not None:
        raise error(f"cannot write {p}: {blocking} is a file, not a folder")
    return p
