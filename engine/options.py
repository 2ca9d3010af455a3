"""What a conversion may be asked for, and the one check every caller (command line, worker) shares.

Kept free of torch, so a command refuses bad options before it loads a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.errors import AudioInputError


@dataclass
class ConvertOptions:
    transpose: float | str = 0.0      # semitones, or "auto"
    f0_method: str | None = None      # default from config
    seed: int | None = None
    temperature: float | None = None
    sample_rate: int | None = None    # output rate; default: the input's
    format: str | None = None         # wav | flac | ogg; default: from the output suffix


MAX_TRANSPOSE = 36.0  # semitones: three octaves either way
MIN_OUTPUT_RATE, MAX_OUTPUT_RATE = 8000, 192000


def check_options(opts: ConvertOptions) -> None:
    """Refuse options no conversion can honour, each with one message (:class:`AudioInputError`)."""
    if opts.transpose != "auto":
        t = opts.transpose
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or abs(t) > MAX_TRANSPOSE:
            raise AudioInputError(f"transpose must be 'auto' or a number of semitones within +-{MAX_TRANSPOSE:g}, "
                                  f"not {t!r}")
    if opts.seed is not None and (isinstance(opts.seed, bool) or not isinstance(opts.seed, int) or opts.seed < 0):
        raise AudioInputError(f"seed must be a whole number of at least 0, not {opts.seed!r}")
    if opts.temperature is not None and not (isinstance(opts.temperature, int | float)
                                             and math.isfinite(opts.temperature) and opts.temperature >= 0):
        raise AudioInputError(f"temperature must be a finite number of at least 0, not {opts.temperature!r}")
    if opts.sample_rate is not None and not (isinstance(opts.sample_rate, int)
                                             and MIN_OUTPUT_RATE <= opts.sample_rate <= MAX_OUTPUT_RATE):
        raise AudioInputError(f"output sample rate {opts.sample_rate} Hz is outside {MIN_OUTPUT_RATE}-"
                              f"{MAX_OUTPUT_RATE} Hz")
