"""Exceptions the engine raises for conditions a user can act on (each carries one clear message)."""


class AutoVoiceError(Exception):
    """Base class: the message is meant for the user, without a traceback."""


class AudioInputError(AutoVoiceError):
    """The input is not usable audio (missing, empty, truncated, silent, NaN, too long, ...)."""


class CheckpointError(AutoVoiceError):
    """A model checkpoint is missing, unreadable or does not match the code."""


class ArtifactError(AutoVoiceError):
    """An exported model or engine is missing, stale or mismatched (its manifest says why)."""


class VoiceError(AutoVoiceError):
    """A voice profile is missing or invalid."""


class Cancelled(AutoVoiceError):
    """The caller asked to stop (checked between chunks)."""
