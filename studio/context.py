"""What every studio handler shares: the Redis URL and clients, the config's limits, and a scratch folder.

The sync client serves short reads and writes (run in worker threads by Gradio, or through
:func:`asyncio.to_thread` from async handlers); the asyncio client serves blocking XREADs, so a handler
that waits for log lines holds no thread.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff

from engine.config import Config, load_config
from workers.connection import connect, describe, redis_url, tcp_options, with_backoff
from workers.settings import JobLimits, job_limits

DEFAULT_PORT = 7860
OUTPUT_DIR_PREFIX = "autovoice-studio-"


@dataclass
class Studio:
    """Shared state of one studio process.

    Args:
        url: Redis URL (``None``: ``$REDIS_URL`` or the default).
        cfg: configuration (``None``: loaded from ``configs/default.yaml`` and the environment).
        auth: ``(user, password)`` pairs when login is on.
    """

    url: str | None = None
    cfg: Config | None = None
    auth: list[tuple[str, str]] = field(default_factory=list)
    _conn: redis.Redis | None = field(default=None, init=False, repr=False)
    _aconns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aredis.Redis] = field(
        default_factory=weakref.WeakKeyDictionary, init=False, repr=False)
    _work_dir: Path | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.url = redis_url(self.url)
        self.cfg = self.cfg or load_config()
        self.limits: JobLimits = job_limits(self.cfg)

    @property
    def config(self) -> Config:
        assert self.cfg is not None
        return self.cfg

    def conn(self) -> redis.Redis:
        """The shared synchronous client (thread-safe: it keeps a connection pool)."""
        with self._lock:
            if self._conn is None:
                self._conn = connect(self.url)
            return self._conn

    def aconn(self) -> aredis.Redis:
        """An asyncio client for the running event loop (a client is bound to the loop that first used it)."""
        loop = asyncio.get_running_loop()
        client = self._aconns.get(loop)
        if client is None:
            client = aredis.Redis.from_url(
                str(self.url), socket_connect_timeout=5, health_check_interval=15,
                retry=AsyncRetry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
                retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
                **tcp_options(str(self.url)))
            self._aconns[loop] = client
        return client

    def wait_for_redis(self, max_wait: float = 15.0) -> None:
        """Return once Redis answers; raise :class:`~workers.errors.RedisUnavailable` after ``max_wait`` s."""
        conn = self.conn()
        with_backoff(conn.ping, what=f"reach Redis at {describe(conn)}", max_wait=max_wait)

    @property
    def work_dir(self) -> Path:
        """A private folder for downloaded results (Gradio serves files from the system temp folder)."""
        with self._lock:
            if self._work_dir is None:
                self._work_dir = Path(tempfile.mkdtemp(prefix=OUTPUT_DIR_PREFIX))
            return self._work_dir

    def job_dir(self, job_id: str) -> Path:
        folder = self.work_dir / job_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def close(self) -> None:
        """Drop the scratch folder (results already handed to browsers live in Gradio's own cache)."""
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None

    def max_upload_bytes(self) -> int:
        return self.limits.max_blob_bytes

    def describe(self) -> dict[str, Any]:
        from workers.connection import safe_url

        return {"redis": safe_url(str(self.url)), "login": bool(self.auth)}
