"""Blobs: job inputs and outputs stored in Redis with a TTL and a size cap.

A worker host needs nothing but the Redis URL: the studio uploads the input as a blob, the job downloads
it, and uploads its output as another blob that lives for the retention period.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis

from workers import keys
from workers.errors import BlobError

MAX_NAME_LENGTH = 200


@dataclass(frozen=True)
class BlobInfo:
    blob_id: str
    name: str
    size: int
    created: float
    ttl: int  # seconds left; -1 = no expiry


def new_id() -> str:
    return uuid.uuid4().hex


def _clean_name(name: str) -> str:
    """The file name only (no folders), so a blob's name can never be used as a path outside a folder."""
    base = Path(name.replace("\\", "/")).name or "blob"
    return base[-MAX_NAME_LENGTH:]


def put(conn: redis.Redis, data: bytes, *, name: str, ttl: int, max_bytes: int,
        blob_id: str | None = None) -> str:
    """Store ``data`` under a new id (or ``blob_id``, replacing it) for ``ttl`` seconds.

    Args:
        conn: Redis client.
        data: the bytes.
        name: original file name (folders are dropped); keeps the suffix for the reader.
        ttl: seconds to keep it.
        max_bytes: refuse anything larger.
        blob_id: a fixed id (a job's output uses one derived from the job id, so a retried job replaces
            its output rather than adding another).

    Returns:
        The blob id.

    Raises:
        BlobError: ``data`` is larger than ``max_bytes`` or empty.
    """
    if len(data) > max_bytes:
        raise BlobError(f"{_clean_name(name)}: {len(data) / 2**20:.1f} MB is more than the limit of "
                        f"{max_bytes / 2**20:.0f} MB (jobs.max_blob_mb)")
    if not data:
        raise BlobError(f"{_clean_name(name)}: file is empty")
    blob_id = blob_id or new_id()
    key = keys.blob(blob_id)
    with conn.pipeline() as pipe:
        pipe.delete(key)
        pipe.hset(key, mapping={"data": data, "name": _clean_name(name), "size": len(data),
                                "created": repr(time.time())})
        pipe.expire(key, int(ttl))
        pipe.execute()
    return blob_id


def put_file(conn: redis.Redis, path: str | Path, *, ttl: int, max_bytes: int, name: str | None = None,
             blob_id: str | None = None) -> str:
    """Store a file's bytes (checking the size before reading it)."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise BlobError(f"{path.name}: {size / 2**20:.1f} MB is more than the limit of "
                        f"{max_bytes / 2**20:.0f} MB (jobs.max_blob_mb)")
    return put(conn, path.read_bytes(), name=name or path.name, ttl=ttl, max_bytes=max_bytes, blob_id=blob_id)


def get(conn: redis.Redis, blob_id: str) -> bytes:
    """The blob's bytes.

    Raises:
        BlobError: no such blob (never stored, or expired).
    """
    data = conn.hget(keys.blob(blob_id), "data")
    if data is None:
        raise BlobError(f"blob {blob_id} does not exist (expired after the retention period, or never stored)")
    return bytes(data)


def info(conn: redis.Redis, blob_id: str) -> BlobInfo:
    key = keys.blob(blob_id)
    with conn.pipeline() as pipe:
        pipe.hmget(key, "name", "size", "created")
        pipe.ttl(key)
        (name, size, created), ttl = pipe.execute()
    if name is None:
        raise BlobError(f"blob {blob_id} does not exist (expired after the retention period, or never stored)")
    return BlobInfo(blob_id=blob_id, name=name.decode(), size=int(size), created=float(created), ttl=int(ttl))


def save_to(conn: redis.Redis, blob_id: str, folder: str | Path, name: str | None = None) -> Path:
    """Write the blob into ``folder`` under its stored name (or ``name``) and return the path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / _clean_name(name or info(conn, blob_id).name)
    path.write_bytes(get(conn, blob_id))
    return path


def delete(conn: redis.Redis, blob_id: str) -> bool:
    return bool(conn.delete(keys.blob(blob_id)))


def exists(conn: redis.Redis, blob_id: str) -> bool:
    return bool(conn.exists(keys.blob(blob_id)))
