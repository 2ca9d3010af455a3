"""Pytest fixtures for the job-queue tests (load with ``pytest_plugins = ["redis_fixtures"]``).

``redis_server`` (session): a real ``redis-server``; ``conn``: a client of it, FLUSHALL first;
``queue_env``: the environment for worker and CLI subprocesses; ``workers_pool``: workers started by one
test; ``shared_workers``: two workers kept for a module.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis_support import FAST_TIMING, REDIS_SERVER, SHORT_CHUNKS, RedisServer, WorkerPool


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if not os.path.exists(REDIS_SERVER):
        pytest.skip(f"{REDIS_SERVER} is not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def conn(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client of the test server, wiped first."""
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    from workers.connection import connect

    client = connect(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def queue_env(cli_env: dict[str, str], redis_server: RedisServer) -> dict[str, str]:
    """Environment for worker and CLI subprocesses: the engine test env, this Redis, fast timing."""
    return {**cli_env, "REDIS_URL": redis_server.url, **FAST_TIMING, **SHORT_CHUNKS, "PYTHONUNBUFFERED": "1",
            "PYTHONFAULTHANDLER": "1"}


@pytest.fixture()
def workers_pool(queue_env: dict[str, str], tmp_path: Path) -> Iterator[WorkerPool]:
    pool = WorkerPool(queue_env, tmp_path)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="module")
def shared_workers(queue_env: dict[str, str], redis_server: RedisServer,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerPool]:
    """Two workers kept for a whole module (they re-register by themselves after each test's FLUSHALL)."""
    pool = WorkerPool(queue_env, tmp_path_factory.mktemp("workers"))
    pool.start(2)
    try:
        yield pool
    finally:
        pool.close()
