"""On-disk cache of per-clip measurements (Resemblyzer embeddings, DNSMOS, F0, average envelopes).

Entries are keyed by what was measured (a namespace naming the method and its settings) and by the
file's identity (resolved path, size and modification time), so a re-rendered corpus is measured again.
Only corpus files go through the cache; converted outputs are measured fresh every run.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np


def file_key(path: str | Path, *extra: object) -> str:
    """A short hash of a file's identity (and of any ``extra`` values the measurement depends on)."""
    p = Path(path).resolve()
    st = p.stat()
    text = "|".join([str(p), str(st.st_size), str(st.st_mtime_ns), *map(str, extra)])
    return hashlib.sha1(text.encode()).hexdigest()[:20]


class MeasurementCache:
    """Arrays stored as ``<root>/<namespace>/<key>.npy``; ``root=None`` keeps them in memory only."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root is not None else None
        self._memory: dict[tuple[str, str], np.ndarray] = {}
        self.hits = 0
        self.misses = 0

    def _path(self, namespace: str, key: str) -> Path | None:
        return self.root / namespace / f"{key}.npy" if self.root is not None else None

    def get(self, namespace: str, key: str) -> np.ndarray | None:
        if (namespace, key) in self._memory:
            return self._memory[namespace, key]
        path = self._path(namespace, key)
        if path is not None and path.is_file():
            value = np.load(path, allow_pickle=False)
            self._memory[namespace, key] = value
            return value
        return None

    def put(self, namespace: str, key: str, value: np.ndarray) -> None:
        value = np.asarray(value)
        self._memory[namespace, key] = value
        path = self._path(namespace, key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.npy")
        np.save(tmp, value, allow_pickle=False)
        os.replace(tmp, path)

    def measure(self, namespace: str, path: str | Path, fn: Callable[[], np.ndarray | float]) -> np.ndarray:
        """The cached measurement of ``path`` in ``namespace``, computing and storing it with ``fn`` if absent."""
        key = file_key(path)
        value = self.get(namespace, key)
        if value is not None:
            self.hits += 1
            return value
        self.misses += 1
        result = np.asarray(fn())
        self.put(namespace, key, result)
        return result


def files_key(paths: list[Path], *extra: object) -> str:
    """One key for a measurement over several files (e.g. a voice's average envelope)."""
    text = "|".join([*(file_key(p) for p in paths), *map(str, extra)])
    return hashlib.sha1(text.encode()).hexdigest()[:20]
