"""A light pitch estimate for the transpose suggestion (numpy only; the worker does the real F0 tracking).

Autocorrelation per 40 ms frame over voiced, loud-enough frames; the median of those frames' F0 is all
the suggestion needs, so octave slips in a few frames do not matter.
"""

from __future__ import annotations

import math

import numpy as np

SAMPLE_RATE = 16000
FRAME = 640              # 40 ms: two periods of a 50 Hz voice
HOP = 320                # 20 ms
F0_MIN = 60.0
F0_MAX = 1000.0
VOICING = 0.5            # normalised autocorrelation peak that counts as voiced
SILENCE_DB = -35.0       # frames this far below the loudest are skipped
MAX_TRANSPOSE = 24


def frame_f0(x: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """F0 in Hz per frame (0 where unvoiced or quiet)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < FRAME:
        return np.zeros(0)
    frames = np.lib.stride_tricks.sliding_window_view(x, FRAME)[::HOP]
    frames = frames - frames.mean(axis=1, keepdims=True)
    rms = np.sqrt(np.mean(frames**2, axis=1)) + 1e-12
    loud = 20 * np.log10(rms / rms.max()) > SILENCE_DB
    win = frames * np.hanning(FRAME)
    spec = np.fft.rfft(win, n=2 * FRAME, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :FRAME]
    ac = ac / np.maximum(ac[:, :1], 1e-12)
    lo, hi = int(sr / F0_MAX), min(int(sr / F0_MIN), FRAME - 2)
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    peak = ac[np.arange(len(lag)), lag]
    # Parabolic interpolation around the peak for sub-sample lags.
    left, right = ac[np.arange(len(lag)), lag - 1], ac[np.arange(len(lag)), lag + 1]
    denom = left - 2 * peak + right
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0.0)
    f0 = sr / (lag + np.clip(shift, -1, 1))
    return np.where(loud & (peak > VOICING), f0, 0.0)


def median_f0(x: np.ndarray, sr: int = SAMPLE_RATE) -> float | None:
    """Median F0 of the voiced frames, or ``None`` when (almost) nothing is voiced."""
    f0 = frame_f0(x, sr)
    voiced = f0[f0 > 0]
    return float(np.median(voiced)) if voiced.size >= 3 else None


def suggest_transpose(source_hz: float | None, voice_hz: float | None) -> int:
    """Whole semitones that bring the source's median F0 to the voice's (0 if either is unknown)."""
    if not source_hz or not voice_hz:
        return 0
    semis = int(round(12.0 * math.log2(voice_hz / source_hz)))
    return max(-MAX_TRANSPOSE, min(MAX_TRANSPOSE, semis))
