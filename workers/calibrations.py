"""Calibration sets in Redis: the audio (persistent, capped) and, once a ``calibrate`` job ran, the NPZ.

One hash per set: ``meta`` (JSON: name, files, bytes, created, summary once calibrated), ``audio:N`` and
``name:N`` (the uploaded files), and ``npz`` (``calibration.npz`` bytes). Kept until deleted.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import redis

from workers import keys, records
from workers.errors import CalibrationNotFound, WorkerError

MAX_SETS = 100
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")  # \Z: "$" also matches before a final newline


def validate_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise WorkerError(f"invalid calibration set name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return name


def store_audio(conn: redis.Redis, name: str, files: list[tuple[str, bytes]], max_bytes: int) -> None:
    """Create (or replace) the set ``name`` from ``(file name, bytes)`` pairs (audio files or one zip)."""
    validate_name(name)
    if not files:
        raise WorkerError(f"calibration set {name}: no files")
    total = sum(len(data) for _, data in files)
    if total > max_bytes:
        raise WorkerError(f"calibration set {name}: {total / 2**20:.1f} MB is more than the limit of "
                          f"{max_bytes / 2**20:.0f} MB (jobs.max_blob_mb)")
    if not conn.sismember(keys.calibration_set(), name) and conn.scard(keys.calibration_set()) >= MAX_SETS:
        raise WorkerError(f"there are already {MAX_SETS} calibration sets; delete some first")
    meta = {"name": name, "files": len(files), "bytes": total, "created": time.time(), "summary": None}
    mapping: dict[str, Any] = {"meta": json.dumps(meta), "n_files": len(files)}
    for i, (fname, data) in enumerate(files):
        mapping[f"audio:{i}"] = data
        mapping[f"name:{i}"] = Path(fname.replace("\\", "/")).name or f"file_{i}"
    key = keys.calibration(name)
    with conn.pipeline() as pipe:
        pipe.delete(key)
        pipe.hset(key, mapping=mapping)
        pipe.sadd(keys.calibration_set(), name)
        pipe.execute()


def meta(conn: redis.Redis, name: str) -> dict[str, Any]:
    raw = conn.hget(keys.calibration(name), "meta")
    if raw is None:
        raise CalibrationNotFound(f"no calibration set named {name!r}")
    return json.loads(raw)


def list_meta(conn: redis.Redis) -> list[dict[str, Any]]:
    return records.list_meta(conn, keys.calibration_set(), keys.calibration)


def write_audio(conn: redis.Redis, name: str, folder: str | Path) -> list[Path]:
    """Write the set's files into ``folder`` (file names only, never paths) and return them."""
    key = keys.calibration(name)
    n = conn.hget(key, "n_files")
    if n is None:
        raise CalibrationNotFound(f"no calibration set named {name!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(int(n)):
        fname, data = conn.hmget(key, [f"name:{i}", f"audio:{i}"])
        if data is None:
            continue
        path = folder / f"{i:03d}_{Path(fname.decode()).name}"
        path.write_bytes(bytes(data))
        out.append(path)
    return out


def store_npz(conn: redis.Redis, name: str, npz: bytes, summary: dict[str, Any]) -> None:
    """Attach the calibration result to the set (its audio stays)."""
    info = meta(conn, name)
    info["summary"] = summary
    info["calibrated"] = time.time()
    info["npz_bytes"] = len(npz)
    conn.hset(keys.calibration(name), mapping={"npz": npz, "meta": json.dumps(info)})


def npz(conn: redis.Redis, name: str) -> bytes:
    data = conn.hget(keys.calibration(name), "npz")
    if data is None:
        if not conn.exists(keys.calibration(name)):
            raise CalibrationNotFound(f"no calibration set named {name!r}")
        raise CalibrationNotFound(f"calibration set {name!r} has not been calibrated yet: run a calibrate job")
    return bytes(data)


def delete(conn: redis.Redis, name: str) -> None:
    with conn.pipeline() as pipe:
        pipe.delete(keys.calibration(name))
        pipe.srem(keys.calibration_set(), name)
        deleted, _ = pipe.execute()
    if not deleted:
        raise CalibrationNotFound(f"no calibration set named {name!r}")
