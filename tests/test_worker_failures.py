"""Failure handling with real worker processes: SIGKILL mid-job, Redis restarts, SIGTERM (finish or requeue)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_support import RedisServer, WorkerPool, final_event, submit, tone_file, wait_until

from workers import logs
from workers.connection import connect
from workers.enqueue import job_info, wait
from workers.status import live_workers

pytest_plugins = ["redis_fixtures"]
pytestmark = pytest.mark.timeout(900)  # generous: a loaded machine can be 10x slower than CI


def _busy_with(conn: redis.Redis, pid: int, stage: str = "converting") -> str | None:
    """The job worker ``pid`` is converting right now (past its first progress report), if any."""
    for w in live_workers(conn):
        if w.get("pid") == pid and w.get("current_job"):
            info = job_info(conn, w["current_job"], with_result=False)
            if (info["progress"] or {}).get("stage") == stage:
                return str(w["current_job"])
    return None


def _name_of(conn: redis.Redis, pid: int) -> str:
    return next(w["name"] for w in live_workers(conn) if w.get("pid") == pid)


def test_sigkill_mid_job_retries_once_then_fails_with_reason(conn: redis.Redis, workers_pool: WorkerPool,
                                                             tmp_path: Path) -> None:
    a, b = workers_pool.start(2)
    workers_pool.wait_alive(conn, 2)
    pid_a, pid_b = workers_pool.procs[a].pid, workers_pool.procs[b].pid
    name_b = _name_of(conn, pid_b)
    clip = tone_file(tmp_path / "take.wav", 20.0)
    ids = [submit(conn, clip) for _ in range(10)]

    victim = wait_until(lambda: _busy_with(conn, pid_b), 300, "worker B converting")
    submitted_at = job_info(conn, victim)["enqueued_at"]
    workers_pool.signal(b, signal.SIGKILL)
    killed_at = time.time()
    # Detected and requeued (at the front) within a minute; worker A takes it over.
    wait_until(lambda: job_info(conn, victim)["retries"] == 1, 60, "the abandoned job to be requeued")
    requeued = next(e for e in logs.read(conn, victim) if e.line and "stopped responding" in e.line)
    detection = requeued.time - killed_at
    # Kill A too while it runs the retried job: the second death fails the job, with a reason.
    wait_until(lambda: _busy_with(conn, pid_a) == victim, 300, "worker A converting the retried job")
    workers_pool.signal(a, signal.SIGKILL)
    c = workers_pool.start(1)[0]  # a fresh worker sweeps up and serves the rest
    infos = [wait(conn, j, timeout=240) for j in ids]

    statuses = {i["job_id"]: i["status"] for i in infos}
    assert set(statuses.values()) <= {"finished", "failed"}
    assert list(statuses.values()).count("finished") >= 9
    assert conn.zcard("rq:wip:convert") == 0
    lost = job_info(conn, victim)
    # Retried once; its history keeps when it was submitted, and when it ended.
    assert lost["status"] == "failed" and lost["retries"] == 1
    assert lost["enqueued_at"] == submitted_at and lost["ended_at"] is not None and lost["ended_at"] > killed_at
    assert "stopped responding" in lost["error"] and "already been retried" in lost["error"], lost["error"]
    assert final_event(conn, victim).status == "failed"
    others = [i for i in infos if i["job_id"] != victim]
    assert all(i["status"] == "finished" and i["retries"] == 0 for i in others)
    assert name_b not in {i["worker"] for i in others if i["started_at"] and i["started_at"] > killed_at}
    assert workers_pool.procs[c].poll() is None
    print(f"\nSIGKILL: abandoned job requeued {detection:.1f} s after the kill; after a second kill it failed with: "
          f"{lost['error']}; {list(statuses.values()).count('finished')}/10 finished")


def test_redis_restart_mid_job(conn: redis.Redis, redis_server: RedisServer, workers_pool: WorkerPool,
                               tmp_path: Path) -> None:
    workers_pool.start(2)
    pids = {p.pid for p in workers_pool.procs}
    workers_pool.wait_alive(conn, 2)
    job_id = submit(conn, tone_file(tmp_path / "long.wav", 40.0))
    waited: dict[str, Any] = {}
    client = connect(redis_server.url)
    waiter = threading.Thread(target=lambda: waited.update(wait(client, job_id, timeout=600)))
    waiter.start()
    wait_until(lambda: (job_info(conn, job_id)["progress"] or {}).get("stage") == "converting", 300,
               "the job to be converting")
    down = redis_server.restart(down_for=1.0)
    waiter.join(timeout=600)

    assert waited.get("status") == "finished", waited
    assert waited["retries"] == 0 and waited["result"]["output_blob"]
    chunk_lines = [line for line in logs.lines(conn, job_id) if line.startswith("chunk ")]
    assert [int(c.split()[1].split("/")[0]) for c in chunk_lines] == list(range(1, waited["result"]["chunks"] + 1))
    alive = wait_until(lambda: {w["pid"] for w in live_workers(conn)} >= pids, 30, "workers in the heartbeat set")
    assert alive
    registered = {k.decode() for k in conn.smembers("rq:workers")}
    assert len([k for k in registered if k.startswith("rq:worker:")]) >= 2
    # A restart without persistence loses registrations: workers put themselves back.
    conn.delete("rq:workers", *[f"rq:worker:{w['name']}" for w in live_workers(conn)])
    wait_until(lambda: conn.scard("rq:workers") >= 2, 30, "workers to re-register with RQ")
    after = submit(conn, tone_file(tmp_path / "after.wav", 1.0))
    assert wait(conn, after, timeout=120)["status"] == "finished"
    print(f"\nRedis restart: down {down:.1f} s mid-job; the job finished, the waiting client got its result, "
          "both workers re-registered and took new work")


def test_sigterm_finishes_or_requeues_the_running_job(conn: redis.Redis, workers_pool: WorkerPool,
                                                      tmp_path: Path) -> None:
    # Long grace: the running job finishes, the queued one is left for another worker.
    w1 = workers_pool.start(1, env={"AUTOVOICE_STOP_GRACE": "60"})[0]
    workers_pool.wait_alive(conn, 1)
    short = submit(conn, tone_file(tmp_path / "short.wav", 30.0))
    queued = submit(conn, tone_file(tmp_path / "q.wav", 60.0))
    wait_until(lambda: _busy_with(conn, workers_pool.procs[w1].pid) == short, 300, "worker converting")
    workers_pool.signal(w1, signal.SIGTERM)
    assert workers_pool.procs[w1].wait(timeout=60) == 0
    assert job_info(conn, short)["status"] == "finished"
    assert job_info(conn, queued)["status"] == "queued"
    assert conn.lrange("rq:queue:convert", 0, -1) == [queued.encode()]

    # Short grace: the running job is interrupted at its next chunk and put back at the front.
    w2 = workers_pool.start(1, env={"AUTOVOICE_STOP_GRACE": "0.2"})[0]
    workers_pool.wait_alive(conn, 1)
    wait_until(lambda: _busy_with(conn, workers_pool.procs[w2].pid) == queued, 300, "second worker converting")
    workers_pool.signal(w2, signal.SIGTERM)
    assert workers_pool.procs[w2].wait(timeout=60) == 0
    info = job_info(conn, queued)
    assert info["status"] == "queued" and info["retries"] == 0
    assert conn.lrange("rq:queue:convert", 0, -1) == [queued.encode()]
    assert any("shutting down: job put back" in line for line in logs.lines(conn, queued))
    assert conn.zcard("rq:wip:convert") == 0 and live_workers(conn) == []
