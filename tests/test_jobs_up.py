"""``autovoice up`` with REDIS_URL unset: a private Redis, a CPU worker, the studio; nothing left behind."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis_support import FAST_TIMING, free_port, wait_until

from workers.connection import connect
from workers.status import live_workers

pytestmark = pytest.mark.timeout(900)  # generous: a loaded machine can be 10x slower than CI


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


def _pids(text: str) -> dict[str, int]:
    found = {m.group(1): int(m.group(2)) for m in re.finditer(r"autovoice up: (worker cpu|studio) pid (\d+)", text)}
    redis_pid = re.search(r"private Redis at \S+ \(pid (\d+)\)", text)
    if redis_pid:
        found["redis"] = int(redis_pid.group(1))
    return found


def _studio_streams_over(url: str) -> None:
    """The studio's asyncio client, which follows job logs, works over the private Redis's unix socket (TCP
    options such as keepalive are refused there)."""
    import asyncio

    from studio.context import Studio

    async def follow() -> None:
        client = Studio(url=url).aconn()
        try:
            assert await client.ping()
            assert await client.xread({"autovoice:test:nothing": "0-0"}, block=10) in ([], {})
        finally:
            await client.aclose()

    asyncio.run(follow())


def test_up_starts_private_redis_and_worker_then_stops_everything(cli_env: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in cli_env.items() if k != "REDIS_URL"}
    env.update(FAST_TIMING)
    env["AUTOVOICE_DATA_DIR"] = str(tmp_path / "data")
    err_path = tmp_path / "up.err"
    with open(err_path, "wb") as err:
        up = subprocess.Popen([sys.executable, "-m", "autovoice", "up", "--cpu", "--port", str(free_port())],
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        text = wait_until(lambda: err_path.read_text() if "private Redis at" in err_path.read_text() else "", 120,
                          "the private Redis")
        url = re.search(r"private Redis at (\S+)", text).group(1)
        assert url.startswith("unix://") and (tmp_path / "data" / "redis").is_dir()
        conn = connect(url)
        _studio_streams_over(url)
        wait_until(lambda: len(live_workers(conn)) == 1 or up.poll() is not None, 300, "the worker to beat")
        studio = importlib.util.find_spec("autovoice.commands.studio") is not None
        if studio and up.poll() is None:
            time.sleep(2)  # the studio is up (or crashed, which `up` reports by stopping everything)
            up.send_signal(signal.SIGTERM)
        code = up.wait(timeout=180)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    text = err_path.read_text()
    pids = _pids(text)
    assert {"redis", "worker cpu"} <= set(pids), text
    if studio:  # a studio that fails on its own makes `up` stop everything and exit 1, also without orphans
        assert "studio" in pids and (code == 0 or "the studio exited" in text), text
    else:
        assert code == 1 and "cannot start the studio" in text and "Traceback" not in text, text
    assert "stopped worker cpu" in text and "stopped the private Redis" in text, text
    assert text.index("stopped worker cpu") < text.index("stopped the private Redis")
    wait_until(lambda: not any(_alive(p) for p in pids.values()), 30, "every child of `up` to exit")
    assert not url.removeprefix("unix://") or not Path(url.removeprefix("unix://")).exists()
