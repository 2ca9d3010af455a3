"""Reference systems measured by the same script as the model.

- :class:`EnvelopeSwap`: a WORLD vocoder converter. It analyses the source (Harvest F0, CheapTrick
  envelope, D4C aperiodicity), moves F0 by the transpose, multiplies every frame's envelope by the ratio of
  the target voice's long-term average envelope to the source voice's (both measured from their reference
  clips, over voiced frames), and resynthesizes, keeping the source's timing and loudness.
- :func:`oracle_output`: the target voice's own rendition of the same ``.pho``, read from the corpus: what a
  perfect converter would produce.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter1d

from engine.evaluation.corpus import Pair

SAMPLE_RATE = 16000
FRAME_PERIOD_MS = 5.0
FFT_SIZE = 1024
F0_FLOOR = 60.0
F0_CEILING = 1000.0
SMOOTH_HZ = 100.0          # the envelope ratio is smoothed over this bandwidth (removes harmonic ripple)


@dataclass(frozen=True)
class WorldAnalysis:
    f0: np.ndarray          # [frames] Hz, 0 = unvoiced
    sp: np.ndarray          # [frames, FFT_SIZE // 2 + 1] power envelope
    ap: np.ndarray          # [frames, FFT_SIZE // 2 + 1] aperiodicity


def analyse(audio: np.ndarray, sr: int = SAMPLE_RATE, f0_method: str = "harvest") -> WorldAnalysis:
    """WORLD analysis every 5 ms: Harvest (or DIO + StoneMask) F0, CheapTrick envelope, D4C aperiodicity."""
    import pyworld

    x = np.ascontiguousarray(audio, dtype=np.float64)
    if f0_method == "harvest":
        f0, times = pyworld.harvest(x, sr, f0_floor=F0_FLOOR, f0_ceil=F0_CEILING, frame_period=FRAME_PERIOD_MS)
    elif f0_method == "dio":
        f0, times = pyworld.dio(x, sr, f0_floor=F0_FLOOR, f0_ceil=F0_CEILING, frame_period=FRAME_PERIOD_MS)
        f0 = pyworld.stonemask(x, f0, times, sr)
    else:
        raise ValueError(f"unknown WORLD F0 method {f0_method!r} (harvest or dio)")
    sp = pyworld.cheaptrick(x, f0, times, sr, fft_size=FFT_SIZE)
    ap = pyworld.d4c(x, f0, times, sr, fft_size=FFT_SIZE)
    return WorldAnalysis(f0=f0, sp=sp, ap=ap)


def long_term_envelope(clips: Sequence[np.ndarray], sr: int = SAMPLE_RATE) -> np.ndarray:
    """Mean log power envelope ``[FFT_SIZE // 2 + 1]`` over the voiced frames of ``clips``.

    F0 here only picks the voiced frames and sizes CheapTrick's window, so the fast DIO + StoneMask tracker
    does (Harvest costs about a second per second of audio on this class of machine).

    Raises:
        ValueError: no clip has a voiced frame.
    """
    total = np.zeros(FFT_SIZE // 2 + 1)
    count = 0
    for clip in clips:
        a = analyse(clip, sr, f0_method="dio")
        voiced = a.f0 > 0
        total += np.log(np.maximum(a.sp[voiced], 1e-16)).sum(axis=0)
        count += int(voiced.sum())
    if count == 0:
        raise ValueError("the reference clips have no voiced frame to average")
    return total / count


class EnvelopeSwap:
    """WORLD envelope-swap conversion from one voice's average envelope to another's.

    Args:
        source_envelope: :func:`long_term_envelope` of the source voice's references.
        target_envelope: the same for the target voice.
        sr: sample rate of the audio it converts.
    """

    name = "envelope_swap"

    def __init__(self, source_envelope: np.ndarray, target_envelope: np.ndarray, sr: int = SAMPLE_RATE) -> None:
        self.sr = sr
        width = max(1, int(round(SMOOTH_HZ / (sr / FFT_SIZE))))
        self.log_ratio = uniform_filter1d(np.asarray(target_envelope) - np.asarray(source_envelope), width,
                                          mode="nearest")

    def convert(self, audio: np.ndarray, transpose: float = 0.0) -> np.ndarray:
        """``audio`` in the target voice, ``transpose`` semitones higher, same length and RMS level."""
        import pyworld

        x = np.asarray(audio, dtype=np.float64)
        a = analyse(x, self.sr)
        f0 = a.f0 * 2.0 ** (transpose / 12.0)
        sp = a.sp * np.exp(self.log_ratio)[None, :]
        y = pyworld.synthesize(f0, sp, a.ap, self.sr, frame_period=FRAME_PERIOD_MS)
        y = y[: len(x)] if len(y) >= len(x) else np.pad(y, (0, len(x) - len(y)))
        y *= _rms(x) / max(_rms(y), 1e-9)
        peak = float(np.max(np.abs(y))) if y.size else 0.0
        if peak > 0.99:
            y *= 0.99 / peak
        return y.astype(np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def oracle_output(pair: Pair) -> np.ndarray:
    """The target voice singing the pair's song (16 kHz float32): the time-aligned ideal output."""
    from engine.audio import load_clip

    return load_clip(pair.oracle.path, SAMPLE_RATE)
