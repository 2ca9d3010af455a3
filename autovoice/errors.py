"""Which exceptions are the user's to fix: printed as one line, no traceback."""

from __future__ import annotations


def user_errors() -> tuple[type[BaseException], ...]:
    from engine.config import ConfigError
    from engine.errors import AutoVoiceError

    # Path mistakes name the path: a missing or unwritable one, or a file where a folder belongs (and back).
    errors: list[type[BaseException]] = [AutoVoiceError, ConfigError, FileNotFoundError, PermissionError,
                                         NotADirectoryError, IsADirectoryError, FileExistsError]
    try:  # the studio-only install has no worker package dependencies
        from workers.errors import WorkerError

        errors.append(WorkerError)
    except ImportError:
        pass
    return tuple(errors)
