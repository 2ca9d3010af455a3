"""Named records kept as Redis hashes with a ``meta`` JSON field, listed by a set of their names
(voices, calibration sets)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import redis


def list_meta(conn: redis.Redis, names_key: str, record_key: Callable[[str], str]) -> list[dict[str, Any]]:
    """The ``meta`` of every record named in the set ``names_key``, sorted by name (one round trip);
    names whose hash is gone are skipped."""
    names = sorted(n.decode() for n in conn.smembers(names_key))
    with conn.pipeline() as pipe:
        for n in names:
            pipe.hget(record_key(n), "meta")
        raws = pipe.execute()
    return [json.loads(r) for r in raws if r is not None]
