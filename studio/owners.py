"""Who made a job or a voice, when login is on: small studio-owned keys beside the queue's own.

A job's owner lives as long as the job's history (the retention period); a voice's owner lives until
the voice is deleted. Written before the job is enqueued, so a worker never sees a job without one.
"""

from __future__ import annotations

import redis

from workers import keys

ANONYMOUS = ""


def _job_key(job_id: str) -> str:
    return f"{keys.PREFIX}:studio:owner:job:{job_id}"


def _voice_key(name: str) -> str:
    return f"{keys.PREFIX}:studio:owner:voice:{name}"


def set_job_owner(conn: redis.Redis, job_id: str, user: str | None, ttl: int) -> None:
    if user:
        conn.set(_job_key(job_id), user, ex=int(ttl))


def job_owner(conn: redis.Redis, job_id: str) -> str:
    raw = conn.get(_job_key(job_id))
    return raw.decode() if raw else ANONYMOUS


def job_owners(conn: redis.Redis, job_ids: list[str]) -> dict[str, str]:
    if not job_ids:
        return {}
    raws = conn.mget([_job_key(j) for j in job_ids])
    return {j: (r.decode() if r else ANONYMOUS) for j, r in zip(job_ids, raws, strict=True)}


def set_voice_owner(conn: redis.Redis, name: str, user: str | None) -> None:
    if user:
        conn.set(_voice_key(name), user)


def voice_owners(conn: redis.Redis, names: list[str]) -> dict[str, str]:
    if not names:
        return {}
    raws = conn.mget([_voice_key(n) for n in names])
    return {n: (r.decode() if r else ANONYMOUS) for n, r in zip(names, raws, strict=True)}


def forget_voice(conn: redis.Redis, name: str) -> None:
    conn.delete(_voice_key(name))
