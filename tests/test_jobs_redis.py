"""Queue building blocks against a real Redis, without workers: blobs, logs, caps, cancel, voices, sweeps."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis_support import limits, submit, tone_file

from workers import blobs, keys, logs, voices
from workers.enqueue import cancel, enqueue, enqueue_rebuild, group_status, job_info, list_jobs
from workers.errors import BlobError, QueueFull, VoiceNotFound, WorkerError

pytest_plugins = ["redis_fixtures"]


def test_blob_roundtrip_ttl_cap_and_name(conn: redis.Redis, tmp_path: Path) -> None:
    blob_id = blobs.put(conn, b"abc" * 10, name="../../etc/evil.wav", ttl=30, max_bytes=100)
    assert blobs.get(conn, blob_id) == b"abc" * 10
    info = blobs.info(conn, blob_id)
    assert info.name == "evil.wav" and info.size == 30 and 0 < info.ttl <= 30
    assert blobs.save_to(conn, blob_id, tmp_path) == tmp_path / "evil.wav"
    with pytest.raises(BlobError, match="more than the limit"):
        blobs.put(conn, b"x" * 101, name="big.wav", ttl=30, max_bytes=100)
    with pytest.raises(BlobError, match="empty"):
        blobs.put(conn, b"", name="empty.wav", ttl=30, max_bytes=100)
    assert blobs.delete(conn, blob_id)
    with pytest.raises(BlobError, match="does not exist"):
        blobs.get(conn, blob_id)


def test_log_stream_order_buffering_and_follow(conn: redis.Redis) -> None:
    log = logs.JobLog(conn, "job1", ttl=60)
    log.line("first")
    log.line("second\nthird")
    # Lines written while Redis is unreachable wait, in order, and go out with the next flush.
    dead = redis.Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    log.conn = dead
    log.line("fourth")
    assert not log.flush()
    log.conn = conn
    received: list[logs.LogEntry] = []
    reader = threading.Thread(target=lambda: received.extend(logs.follow(conn, "job1", block_ms=200, timeout=10)))
    reader.start()
    time.sleep(0.3)
    log.line("fifth")
    log.end("finished")
    reader.join(timeout=10)
    assert [e.line for e in received if e.line] == ["first", "second", "third", "fourth", "fifth"]
    assert received[-1].is_end and received[-1].status == "finished"
    assert logs.lines(conn, "job1") == ["first", "second", "third", "fourth", "fifth"]
    assert logs.final_event(conn, "job1").status == "finished"
    assert 0 < conn.ttl(keys.job_log("job1")) <= 60


def test_queue_cap_is_exact_under_concurrent_clients(conn: redis.Redis) -> None:
    lim = limits(max_queue_length=12)
    accepted: list[str] = []
    refused: list[str] = []

    def client() -> None:
        for _ in range(6):
            try:
                accepted.append(enqueue(conn, "convert", {"input_blob": "x", "voice": "v"}, limits=lim))
            except QueueFull as exc:
                refused.append(str(exc))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(accepted) == 12 and len(set(accepted)) == 12
    assert len(refused) == 12 and all("busy, try again later" in r for r in refused)
    assert conn.llen("rq:queue:convert") == 12


def test_enqueue_refuses_non_json_and_unknown_kinds(conn: redis.Redis) -> None:
    with pytest.raises(TypeError):
        enqueue(conn, "convert", {"input_blob": np.float32(1.0)}, limits=limits())
    with pytest.raises(WorkerError, match="unknown job kind"):
        enqueue(conn, "mine_bitcoin", {}, limits=limits())
    assert conn.llen("rq:queue:convert") == 0


def test_cancel_queued_job_removes_it(conn: redis.Redis, tmp_path: Path) -> None:
    job_id = submit(conn, tone_file(tmp_path / "a.wav", 0.5))
    assert job_info(conn, job_id)["status"] == "queued"
    assert cancel(conn, job_id, limits()) == "canceled"
    info = job_info(conn, job_id)
    assert info["status"] == "canceled" and info["error"] == "cancelled while queued"
    assert conn.llen("rq:queue:convert") == 0 and 0 < conn.ttl(f"rq:job:{job_id}") <= 3600
    assert logs.final_event(conn, job_id).status == "canceled"
    assert cancel(conn, job_id) == "canceled"  # idempotent
    assert [j["job_id"] for j in list_jobs(conn)] == [job_id]


def test_rebuild_group_status_is_derived_from_members(conn: redis.Redis) -> None:
    with pytest.raises(WorkerError, match="no live workers"):
        enqueue_rebuild(conn, "onnxruntime", "fp32", limits=limits())
    group = enqueue_rebuild(conn, "onnxruntime", "fp32", queues=["build:a:gpu-x", "build:b:cpu"], limits=limits())
    status = group_status(conn, group)
    assert status["status"] == "queued" and not status["done"]
    assert {m["queue"] for m in status["members"]} == {"build:a:gpu-x", "build:b:cpu"}
    member = next(m for m in status["members"] if m["queue"] == "build:b:cpu")
    cancel(conn, member["job_id"])
    status = group_status(conn, group)
    assert status["status"] == "failed"
    assert status["error"].startswith("build:b:cpu") and "cancelled" in status["error"]


def test_voices_roundtrip_and_cap_of_names(conn: redis.Redis) -> None:
    from engine.voices import VoiceProfile

    emb = np.random.default_rng(3).standard_normal(256).astype(np.float32)
    emb /= np.linalg.norm(emb)
    profile = VoiceProfile(name="alto", embedding=emb, median_f0=np.float64(330.0), n_clips=1, seconds=1.0)
    voices.save_profile(conn, profile, [np.zeros(16000, np.float32) + 0.1], max_bytes=10**6)
    assert [m["name"] for m in voices.list_meta(conn)] == ["alto"]
    loaded = voices.load_profile(conn, "alto")
    np.testing.assert_array_equal(loaded.embedding, emb)
    assert loaded.median_f0 == 330.0 and loaded.source == "redis"
    assert len(voices.clips(conn, "alto")) == 1
    json.dumps(voices.list_meta(conn))
    voices.delete(conn, "alto")
    with pytest.raises(VoiceNotFound):
        voices.load_profile(conn, "alto")
    with pytest.raises(WorkerError, match="more than the limit"):
        voices.save(conn, {"name": "big"}, emb.tobytes(), [b"x" * 11], max_bytes=10)


def test_sweep_puts_back_a_job_lost_between_pop_and_start(conn: redis.Redis, tmp_path: Path) -> None:
    """A worker killed right after BLPOP leaves a job 'queued' in no queue; the sweep puts it back."""
    from workers.settings import Timing
    from workers.sweeper import sweep

    timing = Timing(heartbeat=0.5, lease=1.0, sweep=0.01)
    job_id = submit(conn, tone_file(tmp_path / "a.wav", 0.5))
    assert conn.lpop("rq:queue:convert").decode() == job_id  # what a dying worker's BLPOP did
    assert sweep(conn, timing, 60, "t").orphans == []  # first sighting: maybe a worker is starting it
    time.sleep(timing.lease_ttl + 0.1)
    assert sweep(conn, timing, 60, "t").orphans == [job_id]
    assert conn.lrange("rq:queue:convert", 0, -1) == [job_id.encode()]
    assert "put back on the queue" in logs.lines(conn, job_id)[-1]


def test_recent_failures_are_newest_first_even_within_one_second(conn: redis.Redis) -> None:
    from datetime import datetime, timedelta, timezone

    from rq.job import Job, JobStatus

    from workers.connection import SERIALIZER
    from workers.enqueue import get_queue
    from workers.status import recent_failures

    registry = get_queue(conn).failed_job_registry
    ended = datetime.now(timezone.utc)
    # Job ids in the reverse of their end order: a tie in the registry's whole-second score falls back to
    # the ids' order, which is the wrong one here.
    for i, job_id in enumerate(["c-oldest", "b-middle", "a-newest"]):
        enqueue(conn, "convert", {}, limits=limits(), job_id=job_id)
        get_queue(conn).remove(job_id)
        job = Job.fetch(job_id, connection=conn, serializer=SERIALIZER)
        job.ended_at = ended + timedelta(milliseconds=100 * i)
        job.set_status(JobStatus.FAILED)
        job.save()
        conn.zadd(registry.key, {job_id: 2_000_000_000})
    assert [f["job_id"] for f in recent_failures(conn)] == ["a-newest", "b-middle", "c-oldest"]
    assert [f["job_id"] for f in recent_failures(conn, limit=2)] == ["a-newest", "b-middle"]


def test_a_worker_name_left_by_a_killed_worker_is_taken_back_and_a_live_one_refused(conn: redis.Redis) -> None:
    import os
    import subprocess

    from rq.worker import Worker

    from workers.connection import SERIALIZER
    from workers.serve import claim_name

    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid runs nothing now
    for name, pid in (("killed", gone.pid), ("alive", os.getppid()), ("restarted", os.getpid())):
        Worker(["q"], connection=conn, name=name, serializer=SERIALIZER).register_birth()
        conn.hset(keys.worker(name), mapping={"host": "h1", "pid": pid, "last_seen": time.time() - 3})
    with pytest.raises(WorkerError, match=r"a worker named killed is registered \(host h1, pid \d+, last seen 3 s "
                                          r"ago\); give another --name, or wait \d+ s"):
        claim_name(conn, "killed", "h2")  # another host's process: this one cannot tell whether it runs
    claim_name(conn, "killed", "h1")
    assert not conn.exists("rq:worker:killed") and not conn.exists(keys.worker("killed"))
    assert b"rq:worker:killed" not in conn.smembers("rq:workers")
    Worker(["q"], connection=conn, name="killed", serializer=SERIALIZER).register_birth()  # the name is free
    with pytest.raises(WorkerError, match="a worker named alive is registered"):
        claim_name(conn, "alive", "h1")
    claim_name(conn, "restarted", "h1")  # its pid is this very process: a restarted container reuses pids
    assert not conn.exists("rq:worker:restarted")
    claim_name(conn, "never-used", "h1")


def test_status_counts_running_jobs_whose_lease_ran_out(conn: redis.Redis) -> None:
    from rq.queue import Queue

    from workers.connection import SERIALIZER
    from workers.status import queues

    q = Queue("convert", connection=conn, serializer=SERIALIZER)
    conn.sadd(Queue.redis_queues_keys, q.key)
    now = int(time.time())
    conn.zadd(q.started_job_registry.key, {"dead:exec1": now - 5, "live:exec2": now + 30})
    row = next(r for r in queues(conn) if r["name"] == "convert")
    assert (row["started"], row["stalled"]) == (2, 1)


def test_a_wav_output_too_large_to_store_is_refused_before_converting(tmp_path: Path) -> None:
    from engine.audio import probe
    from engine.options import ConvertOptions
    from workers.jobs import _check_output_fits

    path = tone_file(tmp_path / "ten.wav", 10.0)  # 10 s at 16 kHz
    info = probe(path, 60.0)
    mb = 2**20
    _check_output_fits(info, ConvertOptions(), "ten.converted.wav", 1 * mb)  # 0.3 MB
    with pytest.raises(WorkerError, match=r"the output would be 3.7 MB of WAV \(10 s at 192000 Hz\), more than the "
                                          r"limit of 1 MB"):
        _check_output_fits(info, ConvertOptions(sample_rate=192000), "ten.converted.wav", 1 * mb)
    _check_output_fits(info, ConvertOptions(sample_rate=192000, format="flac"), "ten.converted.flac", 1 * mb)


def test_submit_wait_reports_a_job_that_vanished_instead_of_waiting_forever(
        conn: redis.Redis, queue_env: dict[str, str], tmp_path: Path) -> None:
    import subprocess
    import sys

    from rq.job import Job

    clip = tone_file(tmp_path / "in.wav", 1.0)
    proc = subprocess.Popen([sys.executable, "-m", "autovoice", "submit", "convert", str(clip), "--voice",
                             "testvoice", "--wait"], env=queue_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        job_id = wait_until_job(conn)
        conn.delete(Job.key_for(job_id))  # as a Redis restarted without its data would have it: no worker here
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    record = json.loads(out.strip().splitlines()[-1])
    assert record["job_id"] == job_id and f"no job {job_id}" in record["error"]


def wait_until_job(conn: redis.Redis, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ids = conn.zrange(keys.job_index(), 0, -1)
        if ids:
            return ids[0].decode()
        time.sleep(0.05)
    raise AssertionError("the job was never enqueued")
