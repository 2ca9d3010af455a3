"""The studio's own user-facing error; worker and engine errors keep their types and messages."""

from __future__ import annotations

from workers.errors import WorkerError


class StudioError(WorkerError):
    """Something the person using the studio can fix (a bad file, a missing name); one clear message."""


def message(exc: BaseException) -> str:
    """The one-line message shown in the page for an error a user can act on."""
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0]
