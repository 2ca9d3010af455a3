"""Synthetic sung audio and shared type aliases for the tests (importable by name: ``audio_support``).

Kept out of ``conftest.py`` because a second ``conftest`` (tests/browser) makes ``from conftest import``
ambiguous.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np

FORMANTS = ((700.0, 110.0, 1.0), (1220.0, 120.0, 0.5), (2600.0, 160.0, 0.25))  # (Hz, bandwidth, gain): /a/
SCALE = (0, 2, 4, 5, 7, 9, 11, 12)  # major scale, semitones

SungAudio = Callable[..., np.ndarray]
SungClip = Callable[..., Path]


def sung_audio(seconds: float, sr: int, f0: float = 220.0, seed: int = 0, level: float = 0.5,
               vibrato_cents: float = 30.0) -> np.ndarray:
    """A legato melody: harmonic tones with vibrato and gliding note changes under a vowel-like envelope.

    Args:
        seconds: length.
        sr: sample rate.
        f0: the melody's lowest note (Hz); notes wander up to an octave above it.
        seed: chooses the notes and their lengths.
        level: peak amplitude of the result.
        vibrato_cents: vibrato depth.

    Returns:
        Mono float64 samples, never silent between notes.
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    control_rate = 1000  # note and glide planning at 1 ms resolution
    n_ctl = int(np.ceil(seconds * control_rate)) + 1
    semis = np.empty(n_ctl)
    pos = 0
    while pos < n_ctl:
        length = int(rng.uniform(0.25, 0.6) * control_rate)
        semis[pos: pos + length] = SCALE[int(rng.integers(len(SCALE)))]
        pos += length
    glide = np.hanning(61)  # ~60 ms portamento between notes
    semis = np.convolve(np.pad(semis, 30, mode="edge"), glide / glide.sum(), mode="valid")
    t = np.arange(n) / sr
    semis_t = np.interp(t, np.arange(n_ctl) / control_rate, semis)
    vib = vibrato_cents / 100.0 * np.sin(2 * np.pi * 5.5 * t + rng.uniform(0, 2 * np.pi))
    f0_t = f0 * 2.0 ** ((semis_t + vib) / 12.0)
    phase = 2 * np.pi * np.cumsum(f0_t) / sr
    limit = min(0.45 * sr, 7000.0)
    y = np.zeros(n)
    for k in range(1, int(limit // f0) + 1):
        fk = k * f0_t
        env = sum(g / (1.0 + ((fk - fc) / bw) ** 2) for fc, bw, g in FORMANTS) + 0.05 / k
        y += np.where(fk < limit, env, 0.0) * np.sin(k * phase)
    swell = 0.8 + 0.2 * np.sin(2 * np.pi * 0.2 * t)  # phrase dynamics, never silent
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.03) if n > 1 else np.ones(n)
    y *= swell * fade
    return level * y / max(float(np.max(np.abs(y))), 1e-12)


def channel_gains(channels: int) -> np.ndarray:
    """Distinct per-channel gains averaging exactly 1, so the mono mix of the channels is the melody."""
    g = np.linspace(1.2, 0.8, channels) if channels > 1 else np.ones(1)
    return g / g.mean()


CliRun = Callable[..., subprocess.CompletedProcess[str]]
