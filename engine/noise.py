"""Seeded noise addressed by absolute position: a chunk gets exactly the noise the whole file would.

Noise is drawn per fixed-size block from a generator seeded with ``(seed, stream, block)``, so any range
can be produced without generating what comes before it.
"""

from __future__ import annotations

import numpy as np

BLOCK = 4096
STREAMS = {"flow": 1, "vocoder": 2}


def _block(seed: int, stream: int, index: int, rows: int) -> np.ndarray:
    rng = np.random.default_rng([seed, stream, index])
    return rng.standard_normal((rows, BLOCK), dtype=np.float32)


def positional_noise(seed: int, stream: str, start: int, stop: int, rows: int = 1) -> np.ndarray:
    """Standard normal noise ``[rows, stop - start]`` for positions ``[start, stop)`` of ``stream``."""
    sid = STREAMS[stream]
    first, last = start // BLOCK, (stop - 1) // BLOCK
    blocks = [_block(seed, sid, b, rows) for b in range(first, last + 1)] if stop > start else []
    if not blocks:
        return np.zeros((rows, 0), dtype=np.float32)
    joined = np.concatenate(blocks, axis=1)
    offset = start - first * BLOCK
    return joined[:, offset: offset + (stop - start)]
