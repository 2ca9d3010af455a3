"""Jobs' scratch folders: named for the worker process that made them, so what a killed worker left behind
(an uploaded input, a half-written output) is removed when a worker starts on that host again."""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

KINDS = ("job", "voice", "calib", "build")
_NAME = re.compile(rf"^autovoice-({'|'.join(KINDS)})-(\d+)-")


def scratch_dir(kind: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary folder for one ``kind`` of job, removed when the block ends (or by :func:`sweep`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown scratch kind {kind!r}")
    return tempfile.TemporaryDirectory(prefix=f"autovoice-{kind}-{os.getpid()}-")


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it runs
        return True
    return True


def sweep(root: str | Path | None = None) -> list[Path]:
    """Remove the scratch folders of worker processes that no longer run; returns what was removed."""
    removed = []
    for path in Path(root or tempfile.gettempdir()).glob("autovoice-*"):
        match = _NAME.match(path.name)
        if match and path.is_dir() and not path.is_symlink() and not process_alive(int(match.group(2))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    if removed:
        log.info("removed %d scratch folder(s) left by stopped workers", len(removed))
    return removed
