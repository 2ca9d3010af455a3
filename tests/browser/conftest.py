"""The running stack for the browser tests, and Debian's Chromium driven by Playwright.

The stack is what a person starts: ``autovoice up --cpu`` (its worker and the studio) joined to a real
``redis-server`` through ``REDIS_URL``, plus a second ``autovoice worker --cpu``, all with the UNTRAINED
test checkpoint and one thread each. Screenshots go to ``$AUTOVOICE_SCREENSHOT_DIR`` when set (the
README's images are made with ``AUTOVOICE_SCREENSHOT_DIR=docs/screenshots``), else to a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from studio_pages import open_studio
from test_studio_support import RedisServer, free_port, start_redis

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
STARTUP_TIMEOUT = 300.0
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    url: str              # the studio
    redis_url: str
    workers: int
    logs: Path

    def tail(self) -> str:
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.logs.glob("*.log")))


def _live_workers(redis_url: str) -> int:
    import redis

    from workers.status import live_workers

    return len(live_workers(redis.Redis.from_url(redis_url)))


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes], wait: float) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, cli_env: dict[str, str]) -> Iterator[Stack]:
    if not Path(CHROMIUM).exists() or shutil.which("ffmpeg") is None:
        why = "the browser tests need Debian's chromium and ffmpeg (apt-get install chromium ffmpeg)"
        if os.environ.get("AUTOVOICE_REQUIRE_BROWSER") == "1":  # make test: a missing browser is a failure
            pytest.fail(why)
        pytest.skip(why)
    root = tmp_path_factory.mktemp("stack")
    server: RedisServer = start_redis(root)
    redis_url = server.db_url(0)
    port = free_port()
    env = {**cli_env, "REDIS_URL": redis_url, "AUTOVOICE_WORKER_HEARTBEAT": "1",
           "AUTOVOICE__INFERENCE__CHUNK_SECONDS": "1.0", "AUTOVOICE__INFERENCE__OVERLAP_SECONDS": "0.25"}
    logs = root / "logs"
    logs.mkdir()
    procs = []
    try:
        for name, args in (("up", ["up", "--cpu", "--port", str(port)]),
                           ("worker2", ["worker", "--cpu", "--redis", redis_url, "--name", "second-worker"])):
            out = (logs / f"{name}.log").open("wb")
            procs.append(subprocess.Popen([sys.executable, "-m", "autovoice", *args], cwd=root, env=env,
                                          stdout=out, stderr=subprocess.STDOUT))
        stack = Stack(url=f"http://127.0.0.1:{port}/", redis_url=redis_url, workers=2, logs=logs)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not (_live_workers(redis_url) >= 2 and _http_ok(stack.url)):
            if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                pytest.fail(f"the stack did not come up within {STARTUP_TIMEOUT:.0f} s:\n{stack.tail()}")
            time.sleep(0.5)
        yield stack
    finally:
        for p in procs:
            _stop(p, 60)
        server.stop()


@pytest.fixture(scope="session")
def browser(stack: Stack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def pages(browser: Any, stack: Stack) -> Iterator[list[Any]]:
    """Two people's pages, loaded once (a page load is the slowest thing Chromium does here)."""
    opened = [open_studio(browser, stack.url) for _ in range(2)]
    yield opened
    for page in opened:
        page.context.close()


@pytest.fixture(scope="session")
def shot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = os.environ.get("AUTOVOICE_SCREENSHOT_DIR")
    folder = (REPO_ROOT / target) if target and not Path(target).is_absolute() else Path(target or
                                                                                       tmp_path_factory.mktemp("shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder
