"""Studio handlers against a real Redis and a real AutoVoice worker process running stand-in jobs.

Each test that needs an empty queue gets its own Redis database; the worker serves database 0.
"""

# ruff: noqa: F811  (pytest fixtures imported from test_studio_support are parameters here)

from __future__ import annotations

import asyncio
import time
import wave
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from test_studio_support import (  # noqa: F401  (fixtures)
    RedisServer,
    free_port,
    make_studio,
    redis_server,
    start_fake_worker,
    stop,
    studio_env,
    tone,
    wait_for_worker,
    wav_bytes,
)

from studio import history, owners
from studio.convert_view import OUTPUTS
from studio.handlers_calibration import CalibrationHandlers
from studio.handlers_convert import ConvertHandlers
from studio.handlers_engines import EnginesHandlers
from studio.handlers_voices import VoicesHandlers
from studio.handlers_workers import WorkersHandlers
from workers import calibrations, keys, voices
from workers.enqueue import job_info, list_jobs

WORKER = "fake-worker-1"
NOBODY = SimpleNamespace(username=None)
pytestmark = pytest.mark.timeout(600)


def out(update: tuple[Any, ...], name: str) -> Any:
    return update[OUTPUTS.index(name)]


def collect(agen: AsyncIterator[Any]) -> list[tuple[float, Any]]:
    """Run an async generator to its end; each update with the time it arrived."""
    async def run() -> list[tuple[float, Any]]:
        return [(time.monotonic(), u) async for u in agen]

    return asyncio.run(run())


@pytest.fixture(scope="module")
def worker_url(redis_server: RedisServer, studio_env: dict[str, str]) -> Iterator[str]:
    url = redis_server.db_url(0)
    proc = start_fake_worker(url, WORKER, studio_env)
    try:
        wait_for_worker(url, WORKER, proc)
        yield url
    finally:
        stop(proc)


@pytest.fixture()
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "take one.wav"
    path.write_bytes(wav_bytes(tone(1.5), 16000))
    return path


def seconds_of(path: str | Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def convert_args(recording: Any, voice: str, batch: list[Any] | None = None, state: Any = None,
                 fmt: str = "wav") -> list[Any]:
    return [recording, batch, voice, 2, "default", "torch", "fp32", fmt, "same as input", None, 0.0, state or [],
            NOBODY]


def test_convert_streams_log_lines_while_the_job_runs(worker_url: str, make_studio: Any, clip: Path) -> None:
    h = ConvertHandlers(make_studio(worker_url))
    updates = collect(h.convert(*convert_args(str(clip), "slow")))
    final = updates[-1][1]
    assert out(final, "error") == ""
    logs = [out(u, "log") for _, u in updates if isinstance(out(u, "log"), str)]
    # Lines arrived in several updates while the job ran, not all at the end.
    partial = [text for text in logs[:-1] if "chunk 1/4" in text and "chunk 4/4" not in text]
    assert partial, logs
    assert "progress: converting" in out(final, "log")
    assert out(final, "log").splitlines()[-1] == "finished"
    output = out(final, "output")
    assert Path(output).is_file() and seconds_of(output) == pytest.approx(seconds_of(clip), abs=1e-3)
    plot = out(final, "plot")
    assert set(plot["track"]) == {"source", "converted"}
    assert plot[plot["track"] == "converted"]["F0 (Hz)"].median() == pytest.approx(330.0)
    state = out(final, "state")
    assert len(state) == 1 and state[0]["name"] == clip.name
    assert out(final, "table")[0][3] == "finished"


def test_convert_refuses_a_text_file_named_wav_without_enqueueing(make_studio: Any, redis_server: RedisServer,
                                                                  tmp_path: Path) -> None:
    studio = make_studio(redis_server.db_url(1))
    studio.conn().flushdb()
    fake = tmp_path / "notes.wav"
    fake.write_text("these are lyrics, not audio\n")
    updates = collect(ConvertHandlers(studio).convert(*convert_args(str(fake), "testvoice")))
    error = out(updates[-1][1], "error")
    assert "notes.wav is not an audio file" in error
    assert studio.conn().llen("rq:queue:convert") == 0


def test_convert_full_queue_says_busy(make_studio: Any, redis_server: RedisServer, clip: Path) -> None:
    studio = make_studio(redis_server.db_url(2), max_queue_length="1")
    studio.conn().flushdb()
    h = ConvertHandlers(studio)

    async def first_then_second() -> tuple[Any, Any]:
        gen = h.convert(*convert_args(str(clip), "testvoice"))
        first = await gen.__anext__()  # queued: nobody serves database 2
        second = [u async for u in h.convert(*convert_args(str(clip), "testvoice"))]
        await gen.aclose()
        return first, second[-1]

    first, second = asyncio.run(first_then_second())
    assert out(first, "error") == ""
    assert "busy, try again later" in out(second, "error")


def test_failed_job_shows_its_reason(worker_url: str, make_studio: Any, clip: Path) -> None:
    final = collect(ConvertHandlers(make_studio(worker_url)).convert(*convert_args(str(clip), "broken")))[-1][1]
    assert "the voice 'broken' cannot sing" in out(final, "error")
    assert out(final, "output") is None


def test_batch_gives_one_job_per_file_and_a_zip(worker_url: str, make_studio: Any, tmp_path: Path) -> None:
    files = []
    for i, seconds in enumerate((1.0, 1.3)):
        p = tmp_path / f"verse{i}.wav"
        p.write_bytes(wav_bytes(tone(seconds), 16000))
        files.append(SimpleNamespace(name=str(p)))
    final = collect(ConvertHandlers(make_studio(worker_url)).convert(
        *convert_args(None, "testvoice", batch=files, fmt="flac")))[-1][1]
    assert out(final, "error") == ""
    downloads = out(final, "files")
    assert [Path(f).suffix for f in downloads] == [".flac", ".flac", ".zip"]
    with zipfile.ZipFile(downloads[-1]) as zf:
        assert sorted(zf.namelist()) == ["verse0.converted.flac", "verse1.converted.flac"]
    assert len(out(final, "state")) == 2
    # A recording beside the batch is not converted, and the page says so.
    mixed = collect(ConvertHandlers(make_studio(worker_url)).convert(
        *convert_args(files[0].name, "testvoice", batch=files[1:])))[-1][1]
    assert "the recording was not converted, the batch files were" in out(mixed, "error")
    assert len(out(mixed, "state")) == 1


def test_each_browser_sees_only_its_own_jobs(worker_url: str, make_studio: Any, clip: Path) -> None:
    studio = make_studio(worker_url)
    h = ConvertHandlers(studio)

    async def both() -> list[list[tuple[float, Any]]]:
        async def one() -> list[tuple[float, Any]]:
            return [(time.monotonic(), u) async for u in h.convert(*convert_args(str(clip), "slow"))]
        return list(await asyncio.gather(one(), one()))

    a, b = asyncio.run(both())
    state_a, state_b = out(a[-1][1], "state"), out(b[-1][1], "state")
    ids_a, ids_b = history.job_ids(state_a), history.job_ids(state_b)
    assert len(ids_a) == len(ids_b) == 1 and ids_a != ids_b
    rows_a = h.history_rows(state_a)
    assert [r[-1] for r in rows_a] == ids_a
    assert Path(out(a[-1][1], "output")).is_file() and Path(out(b[-1][1], "output")).is_file()


def test_cancel_a_queued_job(make_studio: Any, redis_server: RedisServer, clip: Path) -> None:
    studio = make_studio(redis_server.db_url(3))
    studio.conn().flushdb()
    h = ConvertHandlers(studio)

    async def run() -> tuple[str, Any]:
        gen = h.convert(*convert_args(str(clip), "testvoice"))
        first = await gen.__anext__()
        note, _ = await asyncio.to_thread(h.cancel, out(first, "state"))
        rest = [u async for u in gen]
        return note, rest[-1]

    note, final = asyncio.run(run())
    assert "canceled" in note
    assert "cancelled while queued" in out(final, "error")


def test_rebuild_streams_the_build_log_and_ends_finished(worker_url: str, make_studio: Any) -> None:
    h = EnginesHandlers(make_studio(worker_url))
    updates = [u for _, u in collect(h.rebuild("onnxruntime", "fp32", "none", NOBODY))]
    assert len(updates) >= 3, updates  # grew line by line
    assert any("content_encoder: built" in u and "vocoder: built" not in u for u in updates[:-1])
    assert updates[-1].splitlines()[-1].startswith("finished")
    rows = h.table()
    built = [r for r in rows if r[2] == "onnxruntime"]
    assert {r[1] for r in built} == {"content_encoder", "pitch_encoder", "flow_decoder", "mel_projection", "vocoder"}
    assert built[0][4] == "2030-01-02 03:04:05 UTC" and "max_abs_error=1.5e-05" in built[0][6]


def test_rebuild_failure_names_member_and_reason(worker_url: str, make_studio: Any) -> None:
    last = collect(EnginesHandlers(make_studio(worker_url)).rebuild("onnxruntime", "fp16", "none", NOBODY))[-1][1]
    final = last.splitlines()[-1]
    assert final.startswith("failed:") and "build:" in final and "fp16 engines need a GPU" in final


def test_int8_rebuild_needs_a_calibration_set(worker_url: str, make_studio: Any) -> None:
    last = collect(EnginesHandlers(make_studio(worker_url)).rebuild("onnxruntime", "int8", "none", NOBODY))[-1][1]
    assert last.startswith("failed:") and "calibration set" in last


def test_calibration_stores_accepted_files_and_calibrates(worker_url: str, make_studio: Any, tmp_path: Path) -> None:
    studio = make_studio(worker_url)
    archive = tmp_path / "calib.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("set/a.wav", wav_bytes(tone(2.5, f0=200.0), 16000))
        zf.writestr("set/b.wav", wav_bytes(tone(3.0, f0=300.0), 16000))
        zf.writestr("set/short.wav", wav_bytes(tone(0.5), 16000))
        zf.writestr("set/lyrics.wav", b"not audio at all")
    h = CalibrationHandlers(studio)
    summary = h.summary([SimpleNamespace(name=str(archive))])
    assert "2 file(s) accepted" in summary and "5.5 s" in summary and "2 rejected" in summary
    assert "set/short.wav`: too short" in summary and "set/lyrics.wav`: is not an audio file" in summary
    updates = [u for _, u in collect(h.create("choir-1", [SimpleNamespace(name=str(archive))], NOBODY))]
    assert updates[-1][1].splitlines()[-1] == "finished: calibration set choir-1 is ready"
    meta = calibrations.meta(studio.conn(), "choir-1")
    assert meta["files"] == 2 and meta["summary"] == {"examples": 2}
    choices = EnginesHandlers(studio).calibration_choices()["choices"]
    assert "choir-1" in [c[0] if isinstance(c, tuple | list) else c for c in choices]


def test_voices_create_list_listen_delete(worker_url: str, make_studio: Any, clip: Path) -> None:
    studio = make_studio(worker_url)
    studio.auth = [("ann", "pw"), ("bob", "pw")]
    h = VoicesHandlers(studio)
    updates = collect(h.create("ann-alto", [SimpleNamespace(name=str(clip))], SimpleNamespace(username="ann")))
    assert updates[-1][1][0].splitlines()[-1] == "finished: voice ann-alto is ready"
    row = next(r for r in h.table() if r[0] == "ann-alto")
    assert row[1] == "shared" and row[-1] == "ann"
    assert seconds_of(h.listen("ann-alto")) == pytest.approx(seconds_of(clip), abs=1e-3)
    note, *_ = h.delete("ann-alto", SimpleNamespace(username="bob"))
    assert "only they can delete it" in note and voices.exists(studio.conn(), "ann-alto")
    note, *_ = h.delete("ann-alto", SimpleNamespace(username="ann"))
    assert note == "Deleted voice ann-alto." and not voices.exists(studio.conn(), "ann-alto")
    wav_named = collect(h.create("alto.wav", [SimpleNamespace(name=str(clip))], SimpleNamespace(username="ann")))
    assert "may not end in .wav" in wav_named[-1][1][0] and not voices.exists(studio.conn(), "alto.wav")


def test_workers_tab_lists_the_worker_and_retries_a_failed_job(worker_url: str, make_studio: Any,
                                                              clip: Path) -> None:
    studio = make_studio(worker_url)
    collect(ConvertHandlers(studio).convert(*convert_args(str(clip), "broken")))
    h = WorkersHandlers(studio)
    workers_rows, queue_rows, failed_rows, pick = h.refresh(None)
    assert WORKER in [r[0] for r in workers_rows]
    assert keys.CONVERT_QUEUE in [r[0] for r in queue_rows]
    job_id = pick["value"]
    assert failed_rows[0][1] == job_id and "cannot sing" in failed_rows[0][-1]
    retried_at = time.time()
    note, *_ = h.retry(job_id)
    assert "back in the convert queue" in note
    deadline = time.monotonic() + 30
    info = job_info(studio.conn(), job_id)
    while not (info["status"] == "failed" and (info["ended_at"] or 0) > retried_at):
        assert time.monotonic() < deadline, info
        time.sleep(0.2)
        info = job_info(studio.conn(), job_id)
    assert "cannot sing" in (info["error"] or "")
    assert "no failed job" not in h.retry(job_id)[0]



def test_instrumental_is_mixed_under_the_converted_vocal(worker_url: str, make_studio: Any, clip: Path,
                                                         tmp_path: Path) -> None:
    from studio import audio

    backing = tmp_path / "band.wav"
    backing.write_bytes(wav_bytes(tone(2.0, 16000, 110.0), 16000))
    args = convert_args(str(clip), "testvoice", fmt="mp3")
    args[9] = str(backing)
    final = collect(ConvertHandlers(make_studio(worker_url)).convert(*args))[-1][1]
    assert out(final, "error") == ""
    mixed = audio.probe(out(final, "output"))
    assert Path(out(final, "output")).name == "take one.mix.mp3"
    assert mixed.channels == 2 and 2.0 <= mixed.seconds < 2.15  # the longer track, plus MP3's frame padding


def test_with_login_jobs_and_voices_record_who_made_them(worker_url: str, make_studio: Any, clip: Path) -> None:
    """Through the served app: each person logs in (AUTOVOICE_AUTH) and what they start is recorded as theirs."""
    from gradio_client import Client, handle_file

    from studio.app import launch
    from studio.auth import auth_from_env

    studio = make_studio(worker_url)
    studio.auth = auth_from_env({"AUTOVOICE_AUTH": "ann:pw1,bob:pw2"})
    port = free_port()
    demo = launch(studio, port=port, host="127.0.0.1", block=False)
    try:
        url = f"http://127.0.0.1:{port}/"
        ann, bob = Client(url, auth=("ann", "pw1"), verbose=False), Client(url, auth=("bob", "pw2"), verbose=False)
        voice_log = ann.predict("ann-tenor", [handle_file(str(clip))], api_name="/create")[0]
        build_log = bob.predict("onnxruntime", "fp32", "none", api_name="/rebuild")
    finally:
        demo.close()
    assert voice_log.splitlines()[-1] == "finished: voice ann-tenor is ready"
    assert build_log.splitlines()[-1].startswith("finished")
    conn = studio.conn()
    recent = list_jobs(conn, 200)
    voice_job = next(j for j in recent if j["kind"] == "create_voice" and "ann-tenor" in j["description"])
    build_job = next(j for j in recent if j["kind"] == "build_engines" and j["description"].endswith(" by bob"))
    assert voice_job["description"].endswith(" by ann")
    assert owners.job_owners(conn, [voice_job["job_id"], build_job["job_id"]]) == {voice_job["job_id"]: "ann",
                                                                                   build_job["job_id"]: "bob"}
    assert owners.voice_owners(conn, ["ann-tenor"]) == {"ann-tenor": "ann"}
    row = next(r for r in VoicesHandlers(studio).table() if r[0] == "ann-tenor")
    assert row[-1] == "ann"
    # A conversion records its owner the same way (the handler gets the logged-in name from the request).
    args = convert_args(str(clip), "testvoice")
    args[-1] = SimpleNamespace(username="bob")
    final = collect(ConvertHandlers(studio).convert(*args))[-1][1]
    assert out(final, "error") == ""
    converted = next(j for j in list_jobs(conn, 200) if j["kind"] == "convert" and j["description"].endswith(" by bob"))
    assert owners.job_owner(conn, converted["job_id"]) == "bob"


def test_a_job_opened_from_the_history_shows_its_own_log_and_result(worker_url: str, make_studio: Any,
                                                                    clip: Path) -> None:
    h = ConvertHandlers(make_studio(worker_url))
    first = collect(h.convert(*convert_args(str(clip), "testvoice")))[-1][1]
    state = out(first, "state")
    failed = collect(h.convert(*convert_args(str(clip), "broken", state=state)))[-1][1]
    state = out(failed, "state")
    newest_first = history.job_ids(state)
    shown = h.open_result(state, SimpleNamespace(index=[1, 0]))  # the first, finished job
    assert out(shown, "status") == f"Showing job {newest_first[1][:8]} from the history."
    assert out(shown, "source") is None and out(shown, "output").endswith(".wav")
    assert "chunk 1/1" in out(shown, "log") and "cannot sing" not in out(shown, "log")
    broken = h.open_result(state, SimpleNamespace(index=[0, 0]))
    assert out(broken, "status") == f"Job {newest_first[0][:8]} is failed: no output to show."
    assert out(broken, "output") is None and out(broken, "plot") is None and "cannot sing" in out(broken, "log")
