"""Per-clip quality metrics that do not use the model's own components.

Every function takes 16 kHz mono audio (or per-frame F0 on a 10 ms grid) and returns plain floats. F0 is
measured with Praat's autocorrelation tracker as is (no octave folding or island removal, unlike
:func:`engine.f0.extract_f0`), so the evaluation does not share the pipeline's post-processing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000
HOP = 160                 # 10 ms frames; frame i is centred at (i + 0.5) * HOP / SAMPLE_RATE s
F0_FLOOR = 60.0
F0_CEILING = 1000.0
DNSMOS_SECONDS = 9.01     # DNSMOS scores 9.01 s windows, one a second


def praat_f0(audio: np.ndarray, sr: int = SAMPLE_RATE, hop: int = HOP, f0_min: float = F0_FLOOR,
             f0_max: float = F0_CEILING) -> np.ndarray:
    """Praat's (autocorrelation) F0 per frame, Hz, 0 where unvoiced; ``len(audio) // hop`` frames.

    Each of our frame centres takes the Praat frame nearest to it (Praat's frames have the same step, so
    they are at most half a step apart).
    """
    import parselmouth

    n_frames = len(audio) // hop
    snd = parselmouth.Sound(np.asarray(audio, dtype=np.float64), sampling_frequency=sr)
    pitch = snd.to_pitch_ac(time_step=hop / sr, pitch_floor=f0_min, pitch_ceiling=f0_max)
    values = np.nan_to_num(pitch.selected_array["frequency"])
    out = np.zeros(n_frames)
    if values.size == 0:
        return out
    centres = (np.arange(n_frames) + 0.5) * hop / sr
    idx = np.rint((centres - pitch.xs()[0]) / (hop / sr)).astype(int)
    inside = (idx >= 0) & (idx < values.size)
    out[inside] = values[idx[inside]]
    return out


@dataclass(frozen=True)
class F0Error:
    """Absolute pitch error in cents over frames voiced in both tracks."""

    median_cents: float
    p90_cents: float
    frames: int


def f0_error(f0_output: np.ndarray, f0_source: np.ndarray, transpose: float = 0.0) -> F0Error:
    """How far the output's pitch is from the source's moved by ``transpose`` semitones.

    Args:
        f0_output: per-frame F0 of the converted clip (Hz, 0 = unvoiced).
        f0_source: per-frame F0 of the source clip on the same grid.
        transpose: semitones the conversion was asked to move the pitch.

    Returns:
        Median and 90th percentile of ``|1200 log2(f_out / (f_src 2^(transpose/12)))|``; NaN when no frame
        is voiced in both.
    """
    n = min(len(f0_output), len(f0_source))
    out, ref = np.asarray(f0_output[:n], float), np.asarray(f0_source[:n], float) * 2.0 ** (transpose / 12.0)
    both = (out > 0) & (ref > 0)
    if not both.any():
        return F0Error(float("nan"), float("nan"), 0)
    err = np.abs(1200.0 * np.log2(out[both] / ref[both]))
    return F0Error(float(np.median(err)), float(np.percentile(err, 90)), int(both.sum()))


def voicing_agreement(f0_a: np.ndarray, f0_b: np.ndarray) -> float:
    """Fraction of frames (over the shorter track) whose voiced flags agree (1 - voicing decision error)."""
    n = min(len(f0_a), len(f0_b))
    if n == 0:
        return float("nan")
    return float(np.mean((np.asarray(f0_a[:n]) > 0) == (np.asarray(f0_b[:n]) > 0)))


def duration_ratio(output: np.ndarray, source: np.ndarray) -> float:
    """Output length over source length (both at the same rate)."""
    return len(output) / max(len(source), 1)


def speaker_similarity(embedding: np.ndarray, reference: np.ndarray) -> float:
    """Cosine similarity of two Resemblyzer embeddings."""
    a, b = np.asarray(embedding, float), np.asarray(reference, float)
    return float(np.dot(a, b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-8))


def dnsmos_overall(audio: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """DNSMOS P.835 overall quality (``ovrl_mos``, 1-5) of a 16 kHz clip, from the ``speechmos`` package.

    DNSMOS averages 9.01 s windows taken every second; it loops a shorter clip until it fills one. A clip
    shorter than a window is looped to exactly one window here, which gives the same window content as
    ``speechmos`` would score first and costs one model run instead of several.
    """
    from speechmos import dnsmos

    if sr != SAMPLE_RATE:
        raise ValueError(f"DNSMOS needs {SAMPLE_RATE} Hz audio, not {sr}")
    x = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    if x.size == 0 or not np.any(x):
        raise ValueError("DNSMOS of an empty or silent clip is undefined")
    window = int(DNSMOS_SECONDS * sr)
    if x.size < window:
        x = np.tile(x, -(-window // x.size))[:window]
    return float(dnsmos.run(x, sr=sr)["ovrl_mos"])
