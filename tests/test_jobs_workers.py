"""Jobs through real worker processes sharing one Redis: lifecycle, bad inputs, cancel, voices, throughput."""

from __future__ import annotations

import io
import json
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
import soundfile as sf
from redis_support import WorkerPool, final_event, limits, submit, tone_file, wait_until

from workers import blobs, logs
from workers.enqueue import cancel, enqueue, job_info, list_jobs, submit_create_voice, wait
from workers.errors import WorkerError
from workers.status import cluster_status

pytestmark = pytest.mark.timeout(900)  # generous: a loaded machine can be 10x slower than CI

pytest_plugins = ["redis_fixtures"]


@pytest.fixture()
def workers(shared_workers: WorkerPool, conn: redis.Redis) -> WorkerPool:
    shared_workers.wait_alive(conn, 2)
    return shared_workers


def test_lifecycle_enqueue_started_finished_with_output_and_ordered_log(conn: redis.Redis, workers: WorkerPool,
                                                                        tmp_path: Path) -> None:
    clip = tone_file(tmp_path / "take.wav", 3.0, sr=22050)
    job_id = submit(conn, clip)
    seen = [job_info(conn, job_id, with_result=False)["status"]]
    progress = None
    while seen[-1] not in ("finished", "failed", "canceled"):
        info = job_info(conn, job_id, with_result=False)
        progress = info["progress"] or progress
        if info["status"] != seen[-1]:
            seen.append(info["status"])
        time.sleep(0.01)
    assert seen == ["queued", "started", "finished"], seen
    info = job_info(conn, job_id)
    assert info["error"] is None and info["retries"] == 0
    assert info["enqueued_at"] <= info["started_at"] <= info["ended_at"]
    assert info["worker"] in {w["name"] for w in cluster_status(conn)["workers"]}
    assert progress is not None and progress["stage"] in ("analysing", "converting")
    result = info["result"]
    audio, sr = sf.read(io.BytesIO(blobs.get(conn, result["output_blob"])))
    assert sr == 22050 and len(audio) == sf.info(str(clip)).frames and np.all(np.isfinite(audio))
    assert result["output_name"] == "take.converted.wav" and result["chunks"] >= 3
    assert blobs.info(conn, result["output_blob"]).ttl > 0
    lines = logs.lines(conn, job_id)
    order = ["convert on worker", "voice: testvoice", "input take.wav", "chunk(s)", "chunk 1/", "done:",
             "output stored"]
    positions = [next(i for i, line in enumerate(lines) if key in line) for key in order]
    assert positions == sorted(positions), lines
    chunk_lines = [line for line in lines if line.startswith("chunk ")]
    assert [int(c.split()[1].split("/")[0]) for c in chunk_lines] == list(range(1, result["chunks"] + 1))
    end = final_event(conn, job_id)
    assert end is not None and end.status == "finished"
    listed = list_jobs(conn)
    assert listed[0]["job_id"] == job_id and listed[0]["worker"] == info["worker"]
    assert listed[0]["run_seconds"] > 0


BAD_INPUTS = {
    "not_audio.wav": lambda p: p.write_bytes(b"this is not audio at all" * 50),
    "truncated.wav": lambda p: p.write_bytes(_wav_bytes(np.full(16000, 0.1, np.float32))[:2000] + b"\x00" * 7),
    "nan.wav": lambda p: sf.write(str(p), np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT"),
    "silent.wav": lambda p: sf.write(str(p), np.zeros(16000, np.float32), 16000),
}


def _wav_bytes(x: np.ndarray, sr: int = 16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_bad_inputs_fail_that_job_only_and_at_once(conn: redis.Redis, workers: WorkerPool, tmp_path: Path) -> None:
    bad = {}
    for name, make in BAD_INPUTS.items():
        make(tmp_path / name)
        bad[name] = submit(conn, tmp_path / name)
    good_clip = tone_file(tmp_path / "good.wav", 1.0)
    bad["unknown voice"] = submit(conn, good_clip, voice="nobody")
    before = len(conn.keys("*blob*"))
    with pytest.raises(WorkerError, match=r"transpose must be 'auto' or a number of semitones within \+-36"):
        submit(conn, good_clip, options={"transpose": 99})
    assert len(conn.keys("*blob*")) <= before  # refused before the upload (finished jobs may drop theirs)
    # A client that skips that check (a hand-made job, another version) meets the worker's own.
    lim = limits()
    blob = blobs.put_file(conn, good_clip, ttl=lim.retention_seconds, max_bytes=lim.max_blob_bytes)
    bad["bad transpose"] = enqueue(conn, "convert", {"input_blob": blob, "voice": {"name": "testvoice"},
                                                     "options": {"transpose": 99}, "backend": "torch",
                                                     "precision": "fp32"}, limits=lim)
    good = submit(conn, good_clip)
    for what, job_id in bad.items():
        info = wait(conn, job_id, timeout=120)
        assert info["status"] == "failed", (what, info)
        assert info["retries"] == 0 and info["error"] and "Traceback" not in info["error"], (what, info)
        assert "\n" not in info["error"]
        assert final_event(conn, job_id).status == "failed"
    errors = {what: job_info(conn, j)["error"] for what, j in bad.items()}
    assert "not a readable audio file" in errors["not_audio.wav"]
    assert "NaN" in errors["nan.wav"]
    assert "silent" in errors["silent.wav"]
    assert "nobody" in errors["unknown voice"]
    assert "transpose" in errors["bad transpose"]
    assert wait(conn, good, timeout=120)["status"] == "finished"
    assert all(p.poll() is None for p in workers.procs)
    # The workers' own logs say each failure in one line too: bad input is not a crash.
    worker_logs = "".join(p.read_text(errors="replace") for p in workers.logs)
    for job_id in bad.values():
        assert f"job {job_id} failed: " in worker_logs
    assert "Traceback" not in worker_logs


def test_cancel_running_and_queued_jobs(conn: redis.Redis, workers: WorkerPool, tmp_path: Path) -> None:
    long_clip = tone_file(tmp_path / "long.wav", 30.0)
    running = [submit(conn, long_clip) for _ in range(2)]
    queued = submit(conn, long_clip)
    wait_until(lambda: all((job_info(conn, j, with_result=False)["progress"] or {}).get("stage") == "converting"
                           for j in running), 120, "both workers converting")
    assert job_info(conn, queued)["status"] == "queued"
    assert cancel(conn, queued) == "canceled"
    t0 = time.monotonic()
    assert {cancel(conn, j) for j in running} == {"canceling"}
    for job_id in running:
        info = wait(conn, job_id, timeout=60)
        assert info["status"] == "canceled" and info["error"] == "cancelled"
        assert info["result"] is None and not blobs.exists(conn, f"{job_id}-output")
        assert final_event(conn, job_id).status == "canceled"
    stop_seconds = time.monotonic() - t0
    assert job_info(conn, queued)["status"] == "canceled" and job_info(conn, queued)["started_at"] is None
    print(f"\ncancel: running jobs stopped {stop_seconds:.2f} s after the request")
    assert wait(conn, submit(conn, tone_file(tmp_path / "after.wav", 0.5)), timeout=120)["status"] == "finished"


def test_create_voice_in_redis_then_convert_with_it(conn: redis.Redis, workers: WorkerPool, tmp_path: Path) -> None:
    ref = tone_file(tmp_path / "ref.wav", 2.0, f0=330.0)
    voice_job = submit_create_voice(conn, "soprano", [ref], limits=limits())
    info = wait(conn, voice_job, timeout=180)
    assert info["status"] == "finished", info
    assert info["result"]["name"] == "soprano" and info["result"]["source"] == "redis"
    assert abs(info["result"]["median_f0"] - 330.0) < 15
    job = submit(conn, tone_file(tmp_path / "in.wav", 1.0))
    job_redis_voice = submit(conn, tone_file(tmp_path / "in2.wav", 1.0), voice="soprano")
    assert wait(conn, job, timeout=120)["status"] == "finished"
    assert wait(conn, job_redis_voice, timeout=120)["status"] == "finished"
    assert "voice: soprano (from Redis)" in logs.lines(conn, job_redis_voice)
    # A shared voice may not take a built-in voice's name (it would hide the built-in one everywhere).
    taken = wait(conn, submit_create_voice(conn, "us2", [ref], limits=limits()), timeout=180)
    assert taken["status"] == "failed"
    assert taken["error"] == "'us2' is a built-in voice; give the new voice another name"


def test_hundred_jobs_from_five_clients_none_lost_or_duplicated(conn: redis.Redis, workers: WorkerPool,
                                                                 tmp_path: Path) -> None:
    clip = tone_file(tmp_path / "small.wav", 0.3)
    ids: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        from workers.connection import connect

        own = connect(f"redis://127.0.0.1:{conn.connection_pool.connection_kwargs['port']}/0")
        for _ in range(20):
            job_id = submit(own, clip)
            with lock:
                ids.append(job_id)

    t0 = time.monotonic()
    clients = [threading.Thread(target=client) for _ in range(5)]
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    infos = [wait(conn, j, timeout=300) for j in ids]
    elapsed = time.monotonic() - t0
    assert len(ids) == 100 and len(set(ids)) == 100
    assert [i["status"] for i in infos].count("finished") == 100, [i["error"] for i in infos if i["error"]]
    for info in infos:  # each ran exactly once: one start line, one result, no retry
        assert sum(line.startswith("convert on worker") for line in logs.lines(conn, info["job_id"])) == 1
        assert info["retries"] == 0 and info["result"]["output_blob"] == f"{info['job_id']}-output"
    assert conn.zcard("rq:finished:convert") == 100
    assert len({i["worker"] for i in infos}) == 2
    waits = [i["wait_seconds"] for i in infos]
    # Queue overhead proper: from the moment a job could start (enqueued, and its worker free) to its start.
    by_worker: dict[str, list[dict]] = {}
    for info in sorted(infos, key=lambda i: i["started_at"]):
        by_worker.setdefault(info["worker"], []).append(info)
    overhead = []
    for runs in by_worker.values():
        free_at = 0.0
        for info in runs:
            overhead.append(info["started_at"] - max(info["enqueued_at"], free_at))
            free_at = info["ended_at"]
    print(f"\n100 jobs / 5 clients / 2 workers in {elapsed:.1f} s; median enqueue-to-start "
          f"{statistics.median(waits) * 1000:.0f} ms (queueing included); median dispatch overhead "
          f"{statistics.median(overhead) * 1000:.1f} ms (enqueue or previous job's end -> start)")
    assert statistics.median(overhead) < 5.0  # loose: a sanity bound, the figure itself is the report


def test_cli_submit_wait_jobs_and_status(conn: redis.Redis, workers: WorkerPool, run_cli: Callable[..., Any],
                                         queue_env: dict[str, str], tmp_path: Path) -> None:
    env = {"REDIS_URL": queue_env["REDIS_URL"]}
    clip = tone_file(tmp_path / "in.wav", 1.0)
    out = tmp_path / "out" / "converted.wav"
    done = run_cli(["submit", "convert", clip, "--voice", tone_file(tmp_path / "ref.wav", 2.0, f0=300.0),
                    "--redis", env["REDIS_URL"], "--wait", "--json", "-o", out, "--transpose", "2"], env=env)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert record["status"] == "finished" and record["error"] is None and record["output"] == str(out)
    assert sf.info(str(out)).frames == 16000 and record["result"]["transpose"] == 2.0
    assert "chunk 1/1" in done.stderr and "voice: reference clip ref.wav" in done.stderr

    queued = run_cli(["submit", "convert", clip, "--voice", "testvoice"], env=env)
    brief = json.loads(queued.stdout.strip().splitlines()[-1])
    assert queued.returncode == 0 and set(brief) == {"job_id", "status", "error"} and brief["error"] is None

    (tmp_path / "junk.wav").write_bytes(b"junk" * 100)
    failed = run_cli(["submit", "convert", tmp_path / "junk.wav", "--voice", "testvoice", "--wait"], env=env)
    bad = json.loads(failed.stdout.strip().splitlines()[-1])
    assert failed.returncode == 1 and bad["status"] == "failed" and "not a readable audio file" in bad["error"]

    full = run_cli(["submit", "convert", clip, "--voice", "testvoice", "--json"],
                   env={**env, "AUTOVOICE__JOBS__MAX_QUEUE_LENGTH": "0"})
    refused = json.loads(full.stdout.strip().splitlines()[-1])
    assert full.returncode == 1 and refused["status"] == "rejected" and "busy, try again later" in refused["error"]

    assert wait(conn, brief["job_id"], timeout=120)["status"] == "finished"
    listing = run_cli(["jobs", "--json"], env=env)
    jobs = {j["job_id"]: j for j in json.loads(listing.stdout)}
    assert {record["job_id"], brief["job_id"], bad["job_id"]} <= set(jobs)
    assert jobs[brief["job_id"]]["worker"] and jobs[brief["job_id"]]["run_seconds"] > 0
    table = run_cli(["jobs"], env=env)
    assert table.returncode == 0 and brief["job_id"] in table.stdout and "not a readable audio file" in table.stdout

    status = run_cli(["status", "--json"], env=env)
    report = json.loads(status.stdout)
    assert status.returncode == 0 and report["ok"] and len(report["workers"]) == 2
    assert {w["gpu"] for w in report["workers"]} == {"cpu"} and report["redis"]["aof_enabled"]
    assert any(q["name"] == "convert" and q["finished"] >= 2 for q in report["queues"])
    assert any(f["job_id"] == bad["job_id"] for f in report["failures"])
    assert "workers:" in run_cli(["status"], env=env).stdout

    flac = run_cli(["submit", "convert", clip, "--voice", "testvoice", "--wait", "-o", tmp_path / "x.flac"], env=env)
    assert flac.returncode == 0, flac.stderr
    assert sf.info(str(tmp_path / "x.flac")).format == "FLAC"  # the name asks for FLAC: the worker writes it
    (tmp_path / "afile").write_text("")
    blocked = run_cli(["submit", "convert", clip, "--voice", "testvoice", "--wait", "-o",
                       tmp_path / "afile" / "y.wav"], env=env)
    assert blocked.returncode == 1 and "afile is a file, not a folder" in blocked.stderr
    assert "submitted job" not in blocked.stderr  # refused before anything was uploaded or queued
    slow = tone_file(tmp_path / "slow.wav", 30.0)
    late = run_cli(["submit", "convert", slow, "--voice", "testvoice", "--wait", "--timeout", "0.2"], env=env)
    timed_out = json.loads(late.stdout.strip().splitlines()[-1])
    assert late.returncode == 1 and "did not finish within 0.2 s" in timed_out["error"], late.stdout

    down = run_cli(["status", "--redis", "redis://127.0.0.1:9/0"], env=env)
    assert down.returncode == 1 and "cannot reach Redis" in down.stderr and "Traceback" not in down.stderr


def test_job_taken_over_by_a_peer_is_dropped_by_its_first_worker(conn: redis.Redis, workers: WorkerPool,
                                                                  tmp_path: Path) -> None:
    """Fencing: when a sweep hands a job to another worker (its first one looked dead, e.g. stalled in a
    native call), the first worker stops at its next chunk and records nothing, so the job ends once."""
    from rq.job import Job

    from workers.connection import SERIALIZER
    from workers.enqueue import get_queue

    job_id = submit(conn, tone_file(tmp_path / "long.wav", 40.0))
    wait_until(lambda: (job_info(conn, job_id, with_result=False)["progress"] or {}).get("stage") == "converting",
               120, "the job to be converting")
    first = job_info(conn, job_id)["worker"]
    entry = conn.zrange("rq:wip:convert", 0, -1)[0]
    with conn.pipeline() as pipe:  # exactly what the sweep does with an abandoned job
        pipe.multi()
        pipe.zrem("rq:wip:convert", entry)
        get_queue(conn).enqueue_job(Job.fetch(job_id, connection=conn, serializer=SERIALIZER), pipeline=pipe,
                                    at_front=True)
        pipe.execute()
    info = wait(conn, job_id, timeout=300)
    assert info["status"] == "finished" and info["worker"] != first
    lines = logs.lines(conn, job_id)
    assert any("stopped running this job: it had been handed to another worker" in line for line in lines), lines
    assert sum(line.startswith("convert on worker") for line in lines) == 2
    assert len(Job.fetch(job_id, connection=conn, serializer=SERIALIZER).results()) == 1
    assert conn.zcard("rq:wip:convert") == 0
