"""A finished conversion, made ready for the page: the output file (mixed over a backing track and
re-encoded where asked), the F0 plot's table, and a zip of a batch."""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis

from studio import audio
from workers import blobs

MAX_PLOT_POINTS = 1500
WORK_DIR_MAX_AGE = 6 * 3600.0


def output_file(conn: redis.Redis, result: dict[str, Any], folder: Path) -> Path:
    """Download the job's output blob into ``folder``."""
    return blobs.save_to(conn, str(result["output_blob"]), folder, name=result.get("output_name"))


def finish_output(path: Path, fmt: str | None, backing: str | None, backing_gain_db: float) -> Path:
    """The file to hand out: ``path`` as is, or mixed over ``backing`` and/or re-encoded as ``fmt``."""
    current = path.suffix.lstrip(".").lower()
    fmt = fmt or current
    if not backing and current == fmt:
        return path
    info = audio.probe(path)
    vocal = audio.decode(path, info.sample_rate, channels=1)
    samples: np.ndarray = vocal
    suffix = ".converted"
    if backing:
        samples = audio.mix(vocal, audio.decode(backing, info.sample_rate, channels=2), backing_gain_db)
        suffix = ".mix"
    stem = path.name.split(".converted")[0]
    return audio.encode(samples, info.sample_rate, path.with_name(f"{stem}{suffix}.{fmt}"), fmt)


def f0_table(conn: redis.Redis, result: dict[str, Any]) -> pd.DataFrame | None:
    """Source and converted F0 (voiced frames) as a long table ``time (s), F0 (Hz), track`` for a line plot."""
    blob_id = result.get("f0_blob")
    if not blob_id:
        return None
    data = json.loads(blobs.get(conn, str(blob_id)))
    rate = float(data.get("frame_rate") or 100.0)
    frames = []
    for key, label in (("source", "source"), ("target", "converted")):
        f0 = np.asarray(data.get(key) or [], dtype=np.float64)
        if not f0.size:
            continue
        step = max(1, int(np.ceil(f0.size / MAX_PLOT_POINTS)))
        idx = np.arange(0, f0.size, step)
        voiced = f0[idx] > 0
        frames.append(pd.DataFrame({"time (s)": np.round((idx[voiced] + 0.5) / rate, 3),
                                    "F0 (Hz)": np.round(f0[idx][voiced], 1), "track": label}))
    return pd.concat(frames, ignore_index=True) if frames else None


def zip_outputs(paths: list[Path], dest: Path) -> Path:
    """One zip of several outputs (names made unique)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for p in paths:
            name, n = p.name, 1
            while name in used:
                name = f"{p.stem}_{n}{p.suffix}"
                n += 1
            used.add(name)
            zf.write(p, arcname=name)
    return dest


def prune(work_dir: Path, max_age: float = WORK_DIR_MAX_AGE) -> None:
    """Remove job folders older than ``max_age`` seconds from the studio's scratch folder."""
    import shutil

    cutoff = time.time() - max_age
    if not work_dir.is_dir():
        return
    for sub in work_dir.iterdir():
        try:
            if sub.is_dir() and sub.stat().st_mtime < cutoff:
                shutil.rmtree(sub, ignore_errors=True)
        except OSError:
            continue
