"""Cutting long audio into chunks the engines accept, and joining the converted chunks back.

Cuts go at the quietest point of a silence when one is in reach; legato singing has none, so then the
cut is forced and the two chunks overlap, to be crossfaded. All positions are in model frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Chunk:
    start: int  # first frame
    stop: int   # one past the last frame

    @property
    def frames(self) -> int:
        return self.stop - self.start


def plan_chunks(energy_db: np.ndarray, max_frames: int, overlap_frames: int, silence_db: float,
                min_fraction: float = 0.5) -> list[Chunk]:
    """Chunks covering ``[0, len(energy_db))``, none longer than ``max_frames``.

    Args:
        energy_db: per-frame level in dB.
        max_frames: the longest chunk (the engines' largest shape profile).
        overlap_frames: overlap of consecutive chunks (crossfaded).
        silence_db: frames quieter than ``max(energy_db) + silence_db`` are silence, where cuts are clean.
        min_fraction: a cut at silence is taken only past this fraction of ``max_frames``.
    """
    n = int(energy_db.shape[0])
    if max_frames <= 2 * overlap_frames:
        raise ValueError("max_frames must exceed twice the overlap")
    threshold = float(np.max(energy_db)) + silence_db if n else 0.0
    chunks: list[Chunk] = []
    start = 0
    while start < n:
        if n - start <= max_frames:
            chunks.append(Chunk(start, n))
            break
        lo = start + int(max_frames * min_fraction)
        hi = start + max_frames - overlap_frames  # the chunk must still hold the overlap after the cut
        window = energy_db[lo:hi]
        quiet = np.flatnonzero(window < threshold)
        if quiet.size:
            cut = lo + int(quiet[np.argmin(window[quiet])])
        else:
            cut = hi
        chunks.append(Chunk(start, cut + overlap_frames))
        start = cut
    return chunks


def crossfade_weights(n: int) -> np.ndarray:
    """Raised-cosine fade-in of ``n`` samples (the fade-out is ``1 - w``: constant amplitude sum)."""
    if n <= 0:
        return np.zeros(0, dtype=np.float32)
    t = (np.arange(n) + 0.5) / n
    return (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)
