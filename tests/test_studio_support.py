"""Support for the studio's tests (no tests here): a real ``redis-server`` on a free port, a studio bound to
it, and a real AutoVoice worker process whose job functions are light stand-ins (no model), so handler
tests exercise the real queue, logs, heartbeats and results in seconds.

The stand-ins keep the real jobs' argument and result shapes (see ``workers/jobs.py``); their behaviour is
steered by names: the voice ``broken`` fails with a reason, ``slow`` converts in several timed chunks.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from redis_support import RedisServer, free_port  # noqa: F401 - free_port is re-exported to the studio tests

REPO_ROOT = Path(__file__).resolve().parent.parent
CHUNKS_SLOW = 4


def start_redis(folder: Path) -> RedisServer:
    """``redis-server`` on a free loopback port, no persistence, in ``folder``; waits until it answers."""
    server = RedisServer(folder, durable=False)
    server.start()
    return server


def wav_bytes(samples: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def tone(seconds: float, sr: int = 16000, f0: float = 220.0) -> np.ndarray:
    """A harmonic tone with 5.5 Hz vibrato (a stand-in for a sung note)."""
    t = np.arange(int(seconds * sr)) / sr
    f = f0 * 2 ** (0.3 / 12 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(f) / sr
    return 0.3 * sum(np.sin(k * phase) / k for k in range(1, 6))


# -- stand-in job functions (run inside the worker process) -------------------------------------------------
def fake_convert(input_blob: str, voice: Any, options: dict[str, Any] | None = None, backend: str = "auto",
                 precision: str = "fp32") -> dict[str, Any]:
    from workers.context import JobContext
    from workers.errors import WorkerError

    ctx = JobContext.current()
    name = voice.get("name") if isinstance(voice, dict) else str(voice)
    with tempfile.TemporaryDirectory() as tmp:
        path = ctx.fetch_input(input_blob, Path(tmp))
        ctx.say(f"input {path.name}")
        if name == "broken":
            raise WorkerError(f"{path.name}: the voice 'broken' cannot sing")
        with wave.open(str(path)) as w:
            sr, n = w.getframerate(), w.getnframes()
        chunks = CHUNKS_SLOW if name == "slow" else 1
        for i in range(chunks):
            if ctx.should_stop():
                from engine.errors import Cancelled

                raise Cancelled("conversion cancelled")
            time.sleep(0.6 if name == "slow" else 0.05)
            ctx.say(f"chunk {i + 1}/{chunks}")
            ctx.progress("converting", i + 1, chunks)
        out_name = f"{path.stem}.converted.wav"
        out = ctx.put_bytes(wav_bytes(tone(n / sr, sr, 330.0), sr), "output", name=out_name)
        f0 = {"frame_rate": 100.0, "source": [220.0] * int(n / sr * 100), "target": [330.0] * int(n / sr * 100)}
        f0_blob = ctx.put_bytes(json.dumps(f0).encode(), "f0", name="f0.json")
    return {"output_blob": out, "output_name": out_name, "f0_blob": f0_blob, "input_seconds": n / sr,
            "sample_rate": sr, "samples": n, "transpose": float((options or {}).get("transpose", 0.0)),
            "voice": name, "worker": ctx.runtime.worker_name, "trained": False}


def fake_build_engines(backend: str, precision: str, calibration: str | None = None) -> dict[str, Any]:
    from workers.context import JobContext
    from workers.errors import WorkerError

    ctx = JobContext.current()
    if precision == "fp16":
        raise WorkerError("fp16 engines need a GPU: this host has none")
    components = ("content_encoder", "pitch_encoder", "flow_decoder", "mel_projection", "vocoder")
    built = {}
    for c in components:
        time.sleep(0.3)
        ctx.say(f"{c}: built {backend}/{precision}")
        built[c] = {"component": c, "backend": backend, "precision": precision, "created": "2030-01-02T03:04:05Z",
                    "quality": {"max_abs_error": 1.5e-5, "snr_db": 88.0}}
    rt = ctx.runtime
    return {"host": rt.host.host, "gpu": rt.host.gpu, "backend": backend, "precision": precision,
            "calibration": calibration, "result": {"components": built}}


def fake_create_voice(name: str, clip_blobs: list[str]) -> dict[str, Any]:
    from workers import blobs, voices
    from workers.context import JobContext

    ctx = JobContext.current()
    clips = [blobs.get(ctx.conn, b) for b in clip_blobs]
    ctx.say(f"voice {name}: {len(clips)} clip(s)")
    meta = {"name": name, "median_f0": 262.0, "n_clips": len(clips), "seconds": 2.0, "created": time.time(),
            "source": "redis"}
    voices.save(ctx.conn, meta, np.zeros(256, "<f4").tobytes(), clips, 10 * 2**20)
    return meta


def fake_calibrate(name: str) -> dict[str, Any]:
    from workers import calibrations
    from workers.context import JobContext

    ctx = JobContext.current()
    ctx.say(f"calibration set {name}")
    calibrations.store_npz(ctx.conn, name, b"not really an npz", {"examples": 2})
    return {"name": name, "summary": {"examples": 2}}


FAKE_WORKER = """
import sys
sys.path.insert(0, {tests!r})
import test_studio_support as s
import workers.jobs as j
j.convert, j.build_engines = s.fake_convert, s.fake_build_engines
j.create_voice, j.calibrate = s.fake_create_voice, s.fake_calibrate
from workers.serve import serve
sys.exit(serve({url!r}, None, backend="torch", preload=False, name={name!r}))
"""


def start_fake_worker(url: str, name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    code = FAKE_WORKER.format(tests=str(Path(__file__).parent), url=url, name=name)
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for_worker(url: str, name: str, proc: subprocess.Popen[bytes], timeout: float = 240.0) -> None:
    import redis

    from workers import keys

    conn = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if conn.exists(keys.worker(name)):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"worker {name} exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        time.sleep(0.1)
    raise RuntimeError(f"worker {name} did not register within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def studio_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for the studio's worker processes: the caller's minus AutoVoice settings, quick timings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOVOICE")}
    env.update({"AUTOVOICE_DATA_DIR": str(tmp_path_factory.mktemp("studio_data")), "AUTOVOICE__RUNTIME__THREADS": "1",
                "AUTOVOICE_WORKER_HEARTBEAT": "1", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"})
    return env


@pytest.fixture()
def make_studio(tmp_path: Path) -> Iterator[Any]:
    """Factory: ``make_studio(url, max_queue_length="1", ...)`` -> a :class:`Studio` with ``jobs`` overrides."""
    from engine.config import load_config
    from studio.context import Studio

    made: list[Studio] = []

    def make(url: str, **jobs_overrides: str) -> Studio:
        env = {"AUTOVOICE_DATA_DIR": str(tmp_path / "data"), **{f"AUTOVOICE__JOBS__{k.upper()}": v
                                                                for k, v in jobs_overrides.items()}}
        s = Studio(url=url, cfg=load_config(environ=env))
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()
