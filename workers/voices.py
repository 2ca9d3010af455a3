"""Voice profiles in Redis, so any worker host can use any voice: persistent, capped keys until deleted.

Each voice is one hash: ``meta`` (JSON: name, median_f0, n_clips, seconds, created, source),
``embedding`` (little-endian float32 bytes) and ``clip:N`` (the reference clips as 16 kHz PCM-16 WAV).
Listing and deleting need no numpy; reading a profile for conversion imports the engine lazily.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import redis

from workers import keys, records
from workers.errors import VoiceNotFound, WorkerError

if TYPE_CHECKING:
    import numpy as np

    from engine.voices import VoiceProfile

MAX_VOICES = 1000
EMBEDDING_DTYPE = "<f4"


def save(conn: redis.Redis, meta: dict[str, Any], embedding: bytes, clips: list[bytes], max_bytes: int) -> None:
    """Store (or replace) one voice atomically.

    Args:
        conn: Redis client.
        meta: JSON-able description; ``meta["name"]`` is the key.
        embedding: float32 little-endian bytes.
        clips: reference clips as WAV bytes.
        max_bytes: cap on the clips' total size.

    Raises:
        WorkerError: too many voices, or clips too large.
    """
    name = str(meta["name"])
    total = sum(len(c) for c in clips)
    if total > max_bytes:
        raise WorkerError(f"voice {name}: reference clips total {total / 2**20:.1f} MB, more than the limit of "
                          f"{max_bytes / 2**20:.0f} MB (jobs.max_blob_mb)")
    if not conn.sismember(keys.voice_set(), name) and conn.scard(keys.voice_set()) >= MAX_VOICES:
        raise WorkerError(f"there are already {MAX_VOICES} voices; delete some first")
    key = keys.voice(name)
    mapping: dict[str, Any] = {"meta": json.dumps(meta), "embedding": embedding, "n_clips": len(clips)}
    mapping.update({f"clip:{i}": c for i, c in enumerate(clips)})
    with conn.pipeline() as pipe:
        pipe.delete(key)
        pipe.hset(key, mapping=mapping)
        pipe.sadd(keys.voice_set(), name)
        pipe.execute()


def list_meta(conn: redis.Redis) -> list[dict[str, Any]]:
    """Every voice's description, sorted by name (no embeddings, no audio)."""
    return records.list_meta(conn, keys.voice_set(), keys.voice)


def exists(conn: redis.Redis, name: str) -> bool:
    return bool(conn.exists(keys.voice(name)))


def delete(conn: redis.Redis, name: str) -> None:
    """Remove a voice. Raises :class:`VoiceNotFound` when there is none of that name."""
    with conn.pipeline() as pipe:
        pipe.delete(keys.voice(name))
        pipe.srem(keys.voice_set(), name)
        deleted, _ = pipe.execute()
    if not deleted:
        raise VoiceNotFound(f"no voice named {name!r} in Redis")


def clips(conn: redis.Redis, name: str) -> list[bytes]:
    """The reference clips (WAV bytes), in order."""
    n = conn.hget(keys.voice(name), "n_clips")
    if n is None:
        raise VoiceNotFound(f"no voice named {name!r} in Redis")
    values = conn.hmget(keys.voice(name), [f"clip:{i}" for i in range(int(n))])
    return [bytes(v) for v in values if v is not None]


def save_profile(conn: redis.Redis, profile: VoiceProfile, clips_16k: list[np.ndarray], max_bytes: int) -> None:
    """Store an engine :class:`~engine.voices.VoiceProfile` with its 16 kHz reference clips."""
    import io

    import numpy as np
    import soundfile as sf

    from engine.speaker import SAMPLE_RATE

    wavs = []
    for clip in clips_16k:
        buf = io.BytesIO()
        sf.write(buf, np.asarray(clip, dtype=np.float32), SAMPLE_RATE, format="WAV", subtype="PCM_16")
        wavs.append(buf.getvalue())
    meta = profile.describe() | {"source": "redis"}
    meta = {k: (float(v) if isinstance(v, np.floating) else int(v) if isinstance(v, np.integer) else v)
            for k, v in meta.items()}
    save(conn, meta, np.asarray(profile.embedding, dtype=EMBEDDING_DTYPE).tobytes(), wavs, max_bytes)


def load_profile(conn: redis.Redis, name: str) -> VoiceProfile:
    """The stored voice as an engine profile.

    Raises:
        VoiceNotFound: no voice of that name in Redis.
        WorkerError: the stored embedding is not a finite vector of the right size.
    """
    import numpy as np

    from engine.speaker import EMBEDDING_DIM
    from engine.voices import VoiceProfile

    meta_raw, emb_raw = conn.hmget(keys.voice(name), ["meta", "embedding"])
    if meta_raw is None or emb_raw is None:
        raise VoiceNotFound(f"no voice named {name!r} in Redis")
    meta = json.loads(meta_raw)
    emb = np.frombuffer(emb_raw, dtype=EMBEDDING_DTYPE).astype(np.float32)
    if emb.shape != (EMBEDDING_DIM,) or not np.all(np.isfinite(emb)):
        raise WorkerError(f"voice {name}: the stored embedding is not a finite {EMBEDDING_DIM}-vector")
    return VoiceProfile(name=meta["name"], embedding=emb, median_f0=meta.get("median_f0"),
                        n_clips=int(meta.get("n_clips", 1)), seconds=float(meta.get("seconds", 0.0)),
                        created=float(meta.get("created", 0.0)), source="redis")
