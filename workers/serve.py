"""Start one worker process: pin its device and thread count, load its pipeline, then work.

The device and thread settings go into the environment *before* torch is imported (CUDA reads
``CUDA_VISIBLE_DEVICES`` once; torch and ONNX Runtime size their pools from the config's
``runtime.threads``), which is why ``autovoice worker`` calls :func:`pin_environment` first.
"""

from __future__ import annotations

import logging
import os
import time

import redis

from workers import keys
from workers.connection import connect, ping, with_backoff
from workers.errors import RedisUnavailable
from workers.hostinfo import cpu_count
from workers.scratch import process_alive, sweep

log = logging.getLogger(__name__)

STARTUP_REDIS_WAIT = 60.0  # a worker started before Redis waits this long for it
RECONNECT_WAIT = 600.0     # a running worker waits this long for Redis to come back before exiting
MAX_RESTARTS = 10          # restarts of the work loop within RESTART_WINDOW seconds before giving up
RESTART_WINDOW = 300.0


def pin_environment(gpu: int | None, workers_per_host: int | None = None) -> int:
    """Set ``CUDA_VISIBLE_DEVICES``, the torch device and the thread count for this worker process.

    Args:
        gpu: physical GPU index, or None for a CPU worker (which hides every GPU).
        workers_per_host: how many workers share this host's cores (default ``$AUTOVOICE_WORKERS_PER_HOST``
            or 1); each gets ``cores // workers_per_host`` threads unless ``runtime.threads`` is set.

    Returns:
        The thread count the worker will use.
    """
    os.environ["CUDA_VISIBLE_DEVICES"] = "" if gpu is None else str(gpu)
    os.environ["AUTOVOICE__RUNTIME__DEVICE"] = "cpu" if gpu is None else "cuda"
    from engine.config import load_config  # PyYAML only: safe before torch

    share = workers_per_host or int(os.environ.get("AUTOVOICE_WORKERS_PER_HOST") or 1)
    configured = int(load_config().runtime.threads or 0)
    threads = configured if configured > 0 else max(1, cpu_count() // max(share, 1))
    os.environ["AUTOVOICE__RUNTIME__THREADS"] = str(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    return threads


def claim_name(conn: redis.Redis, name: str, host: str) -> None:
    """Take the worker name ``name``: refuse it while a live worker holds it; clear what a worker of this
    host left when it was killed (its registration would block the name until it expires)."""
    from rq.worker import Worker
    from rq.worker_registration import unregister

    from workers.connection import SERIALIZER
    from workers.errors import WorkerError

    rq_key = Worker.redis_worker_namespace_prefix + name
    if not conn.exists(rq_key) or conn.hexists(rq_key, "death"):
        return
    beat = {k.decode(): v.decode() for k, v in conn.hgetall(keys.worker(name)).items()}
    pid = int(beat.get("pid") or 0)
    # Its pid runs nothing, or runs this process (a restarted container gives the same pids): it is stale.
    if beat.get("host") == host and pid and (pid == os.getpid() or not process_alive(pid)):
        old = Worker.find_by_key(rq_key, connection=conn, serializer=SERIALIZER)
        if old is not None:
            unregister(old)
        conn.delete(rq_key, keys.worker(name))
        log.warning("worker %s: cleared the registration left by a stopped worker of that name (pid %d)", name, pid)
        return
    seen = float(beat.get("last_seen") or 0.0)
    when = f", last seen {time.time() - seen:.0f} s ago" if seen else ""
    raise WorkerError(f"a worker named {name} is registered (host {beat.get('host', '?')}, pid {pid or '?'}{when}); "
                      f"give another --name, or wait {conn.ttl(rq_key)} s for its registration to expire")


def serve(url: str | None, gpu: int | None, backend: str = "auto", precision: str = "fp32",
          burst: bool = False, preload: bool = True, name: str | None = None) -> int:
    """Run a worker until it is told to stop (or, with ``burst``, until its queues are empty).

    Call :func:`pin_environment` first. Returns the process exit code.
    """
    from engine.config import load_config
    from workers import runtime as rt_module
    from workers.hostinfo import detect
    from workers.settings import Timing
    from workers.worker import AutoVoiceWorker, worker_name

    cfg = load_config()
    timing = Timing.from_env()
    conn = connect(url)
    try:
        with_backoff(lambda: ping(conn), what="connect to Redis", max_wait=STARTUP_REDIS_WAIT)
    except RedisUnavailable:
        ping(conn)  # raise with the URL in the message
    host = detect(gpu)
    label = host.gpu if gpu is None else f"gpu{gpu}"
    name = name or worker_name(host.host, label)
    claim_name(conn, name, host.host)
    sweep()
    runtime = rt_module.WorkerRuntime(conn, cfg, host, timing, name, backend, precision)
    rt_module.install(runtime)
    log.info("worker %s: %s (%s, %d MB), %d thread(s), queues %s and %s", name, host.host, host.gpu,
             host.memory_mb, cfg.runtime.threads, host.build_queue, keys.CONVERT_QUEUE)
    if preload:
        runtime.converter(backend, precision, say=lambda line: log.info("worker %s: %s", name, line))
    worker = AutoVoiceWorker([host.build_queue, keys.CONVERT_QUEUE], runtime=runtime, name=name)
    restarts: list[float] = []
    while True:
        worker.work(burst=burst, logging_level="INFO")
        if burst or worker.stop_requested:
            return 0
        # RQ's loop quits on an error it did not expect (Redis gone at an unlucky moment): start it again.
        now = time.monotonic()
        restarts = [t for t in restarts if now - t < RESTART_WINDOW] + [now]
        if len(restarts) > MAX_RESTARTS:
            log.error("worker %s: its loop stopped %d times in %.0f s; exiting", name, len(restarts), RESTART_WINDOW)
            return 1
        log.warning("worker %s: its loop stopped unexpectedly; restarting it once Redis answers", name)
        with_backoff(lambda: ping(conn), what="reconnect to Redis", max_wait=RECONNECT_WAIT)
        conn.delete(worker.key)  # this worker's own stale registration, so it can register again
