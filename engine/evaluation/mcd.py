"""Mel-cepstral distortion (MCD) between two time-aligned renditions of the same song.

Method (the usual WORLD + SPTK recipe, written out so that it needs neither SPTK nor pysptk):

1. WORLD CheapTrick spectral envelope of each clip every 10 ms, at the frame centres of
   :func:`engine.evaluation.metrics.praat_f0`, using that Praat F0 (``fft_size`` 1024).
2. Real cepstrum of the log amplitude envelope, folded to SPTK's one-sided convention
   (``log|H(w)| = c0 + sum_m c_m cos(m w)``), then warped to the mel scale by SPTK's ``freqt`` all-pass
   recursion (``alpha`` 0.42, the standard value at 16 kHz), order 24.
3. Per frame ``MCD = 10 / ln 10 * sqrt(2 * sum_{m=1..24} (c_m - c'_m)^2)`` dB (Kubichek 1993), averaged over
   the frames voiced in both clips. ``c0`` (loudness) is left out, so a gain change costs nothing.

With this convention MCD equals the RMS over (warped) frequency of the difference of the two smoothed
log-amplitude envelopes in dB.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from engine.evaluation.metrics import HOP, SAMPLE_RATE

ORDER = 24
ALPHA = 0.42
FFT_SIZE = 1024
MIN_FRAMES = 10           # fewer frames voiced in both and the distortion is not reported (NaN)
_DB = 10.0 / np.log(10.0)


@lru_cache(maxsize=8)
def freqt_matrix(n_in: int, order: int = ORDER, alpha: float = ALPHA) -> np.ndarray:
    """SPTK ``freqt`` as a matrix ``[order + 1, n_in]``: ``mc = W @ c`` warps a cepstrum by ``alpha``.

    ``freqt`` is linear in its input, so running the recursion once on the identity gives the matrix.
    """
    c1 = np.eye(n_in)                       # column k: the unit cepstrum e_k
    g = np.zeros((order + 1, n_in))
    d = np.zeros((order + 1, n_in))
    b = 1.0 - alpha * alpha
    for i in range(n_in - 1, -1, -1):
        d[0] = g[0]
        g[0] = c1[i] + alpha * d[0]
        if order >= 1:
            d[1] = g[1]
            g[1] = b * d[0] + alpha * d[1]
        for j in range(2, order + 1):
            d[j] = g[j]
            g[j] = d[j - 1] + alpha * (d[j] - g[j - 1])
    return g


def envelope_to_mcep(sp: np.ndarray, order: int = ORDER, alpha: float = ALPHA) -> np.ndarray:
    """Mel-cepstra ``[frames, order + 1]`` of WORLD power envelopes ``[frames, fft_size // 2 + 1]``."""
    log_amp = 0.5 * np.log(np.maximum(sp, 1e-16))
    n_fft = 2 * (sp.shape[1] - 1)
    c = np.fft.irfft(log_amp, n=n_fft, axis=1)[:, : sp.shape[1]]
    c[:, 1:] *= 2.0                          # fold to the one-sided (minimum-phase) cepstrum
    return c @ freqt_matrix(sp.shape[1], order, alpha).T


def world_envelope(audio: np.ndarray, f0: np.ndarray, sr: int = SAMPLE_RATE, hop: int = HOP) -> np.ndarray:
    """CheapTrick power envelopes ``[len(f0), FFT_SIZE // 2 + 1]`` at the frame centres of ``f0``."""
    import pyworld

    x = np.ascontiguousarray(audio, dtype=np.float64)
    times = (np.arange(len(f0)) + 0.5) * hop / sr
    return pyworld.cheaptrick(x, np.ascontiguousarray(f0, dtype=np.float64), times, sr, fft_size=FFT_SIZE)


def mcep(audio: np.ndarray, f0: np.ndarray, sr: int = SAMPLE_RATE, hop: int = HOP) -> np.ndarray:
    """Mel-cepstra of a clip, one row per F0 frame."""
    return envelope_to_mcep(world_envelope(audio, f0, sr, hop))


def mcd_frames(mc_a: np.ndarray, mc_b: np.ndarray) -> np.ndarray:
    """Per-frame MCD in dB between two mel-cepstrum sequences of equal length (``c0`` excluded)."""
    diff = mc_a[:, 1:] - mc_b[:, 1:]
    return _DB * np.sqrt(2.0 * np.sum(diff * diff, axis=1))


def distortion(mc: np.ndarray, mc_reference: np.ndarray, f0: np.ndarray, f0_reference: np.ndarray) -> float:
    """Mean MCD (dB) over the frames voiced in both, from precomputed mel-cepstra (:func:`mcep`).

    Returns:
        The mean distortion, or NaN when fewer than ``MIN_FRAMES`` frames are voiced in both.
    """
    n = min(len(mc), len(mc_reference), len(f0), len(f0_reference))
    both = (np.asarray(f0[:n]) > 0) & (np.asarray(f0_reference[:n]) > 0)
    if both.sum() < MIN_FRAMES:
        return float("nan")
    return float(np.mean(mcd_frames(mc[:n][both], mc_reference[:n][both])))


def mel_cepstral_distortion(audio: np.ndarray, reference: np.ndarray, f0: np.ndarray, f0_reference: np.ndarray,
                            sr: int = SAMPLE_RATE, hop: int = HOP) -> float:
    """Mean MCD (dB) of ``audio`` against the time-aligned ``reference`` over frames voiced in both.

    Args:
        audio: the clip to score, 16 kHz.
        reference: the time-aligned rendition to compare with (same song, same timing), 16 kHz.
        f0: per-frame F0 of ``audio`` (Praat, Hz, 0 = unvoiced); selects frames and guides CheapTrick.
        f0_reference: the same for ``reference``.
        sr: sample rate of both.
        hop: samples per frame of the F0 tracks.

    Returns:
        The mean distortion, or NaN when fewer than ``MIN_FRAMES`` frames are voiced in both.
    """
    return distortion(mcep(audio, f0, sr, hop), mcep(reference, f0_reference, sr, hop), f0, f0_reference)
