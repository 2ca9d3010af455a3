"""The studio in Chromium against ``autovoice up --cpu`` + a second worker, a real Redis and the UNTRAINED
test checkpoint.

Two people's pages are loaded once and reused. The engine rebuild takes the longest (ONNX export of five
components), so :func:`rebuild` starts it from a third page, with a recorder of ``engines-log`` inside
that page, right after the two-page test; the other tests run on the second worker meanwhile, and the
last test waits for the build's end.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import soundfile as sf
from studio_pages import open_studio

pytestmark = [pytest.mark.browser, pytest.mark.timeout(1800)]

JOB_ID = re.compile(r"\b[0-9a-f]{32}\b")
OUTPUT_LINK = "#convert-output a[href*='file=']"
BUILD_TIMEOUT_MS = 600_000
# Records, inside the page every 50 ms, each change of a log textarea (and of the output link): what a
# person watching would have seen, independent of how long Playwright's round trips take on a busy machine.
RECORDER = """([name, selector, linkSelector]) => {
  const seen = window[name] = [];
  setInterval(() => {
    const ta = document.querySelector(selector + ' textarea');
    const link = document.querySelector(linkSelector);
    const v = ta ? ta.value : '', href = link ? link.getAttribute('href') : '';
    const last = seen[seen.length - 1];
    if (!last || last.v !== v || last.href !== href) seen.push({t: Date.now(), v: v, href: href});
  }, 50);
}"""


def output_href(page: Any) -> str | None:
    link = page.locator(OUTPUT_LINK)
    return link.first.get_attribute("href") if link.count() else None


def output_seconds(page: Any) -> float:
    """Download what the output player holds and measure it."""
    data = page.request.get(urljoin(page.url, output_href(page))).body()
    info = sf.info(io.BytesIO(data))
    return info.frames / info.samplerate


def clip_seconds(path: Path) -> float:
    info = sf.info(str(path))
    return info.frames / info.samplerate


def upload(page: Any, clip: Path) -> None:
    """Put ``clip`` in the recording player and wait until the studio has read it (its suggestion shows)."""
    page.get_by_role("tab", name="Convert").click()
    clear_recording(page)
    page.set_input_files("#convert-input input[type=file]", str(clip))
    page.wait_for_function(f"document.querySelector('#convert-suggestion')?.innerText.includes('{clip.name}:')")


def clear_recording(page: Any) -> None:
    """Empty the recording player (a loaded player has no file input until it is cleared)."""
    if page.locator("#convert-input input[type=file]").count() == 0:
        page.locator("#convert-input").get_by_role("button", name="Clear").click()
        page.wait_for_selector("#convert-input input[type=file]", state="attached")


def wait_done(page: Any, previous_href: str | None = None) -> None:
    """Wait for a new result: a new output link, and a log whose last line says ``finished``."""
    page.wait_for_function("""([selector, previous]) => {
        const link = document.querySelector(selector), ta = document.querySelector('#convert-log textarea');
        const href = link ? link.getAttribute('href') : '';
        return href && href !== previous && ta && ta.value.trim().split('\\n').pop() === 'finished'; }""",
                           arg=[OUTPUT_LINK, previous_href or ""])


def history_ids(page: Any) -> list[str]:
    return JOB_ID.findall(page.locator("#convert-history").inner_text())


@pytest.fixture(scope="module")
def rebuild(browser: Any, stack: Any) -> Iterator[Any]:
    """A page whose Rebuild (onnxruntime fp32) was clicked, recording every change of ``engines-log``."""
    page = open_studio(browser, stack.url)
    page.get_by_role("tab", name="Engines").click()
    page.wait_for_selector("#engines-rebuild")
    page.evaluate(RECORDER, ["__engineLog", "#engines-log", OUTPUT_LINK])
    page.click("#engines-rebuild")
    yield page
    page.context.close()


def test_two_pages_convert_at_once_and_each_gets_its_own_result(pages: list[Any], sung_clip: Any,
                                                                 stack: Any) -> None:
    import redis

    from workers.enqueue import job_info

    clips = [sung_clip(seconds=2.2, sr=22050, seed=11), sung_clip(seconds=3.0, sr=16000, f0=180.0, seed=12)]
    for page, clip in zip(pages, clips, strict=True):
        upload(page, clip)
    for page in pages:
        page.click("#convert-button")
    for page in pages:
        wait_done(page)
    for page, clip in zip(pages, clips, strict=True):
        assert output_seconds(page) == pytest.approx(clip_seconds(clip), abs=1e-3)
    ids = [history_ids(p) for p in pages]
    assert len(ids[0]) == len(ids[1]) == 1 and ids[0] != ids[1]  # each page lists only its own job
    conn = redis.Redis.from_url(stack.redis_url)
    infos = [job_info(conn, i[0], with_result=False) for i in ids]
    assert infos[0]["worker"] != infos[1]["worker"]
    start = max(i["started_at"] for i in infos)
    end = min(i["ended_at"] for i in infos)
    assert start < end, f"the jobs ran one after the other: {infos}"


def test_convert_streams_progress_while_the_job_runs(pages: list[Any], sung_clip: Any, rebuild: Any,
                                                    shot_dir: Path) -> None:
    page = pages[0]
    clip = sung_clip(seconds=2.5, sr=22050, f0=170.0, seed=21)
    upload(page, clip)
    suggested = int(re.search(r"transpose ([+-]\d+)\s+semitones", page.locator("#convert-suggestion").inner_text())
                    .group(1))
    assert suggested > 0  # the clip sings below the voice's 330 Hz
    page.click("#convert-use-suggested")
    page.wait_for_function(f"document.querySelector('#convert-transpose input[type=number]')?.value === '{suggested}'")
    before = output_href(page)
    page.evaluate(RECORDER, ["__convertLog", "#convert-log", OUTPUT_LINK])
    page.click("#convert-button")
    wait_done(page, before)
    seen = [(h["v"], bool(h["href"]) and h["href"] != before) for h in page.evaluate("window.__convertLog")]
    final = page.locator("#convert-log textarea").input_value().splitlines()
    assert final[-1] == "finished", final
    running = [log for log, done in seen if not done and "chunk 1/" in log and "finished" not in log]
    assert running, f"no progress lines were shown while the job ran: {seen}"
    assert len({log for log, done in seen if not done}) >= 3
    assert output_seconds(page) == pytest.approx(clip_seconds(clip), abs=1e-3)
    assert len(history_ids(page)) == 2
    page.wait_for_selector("#convert-f0-plot canvas, #convert-f0-plot svg")
    page.screenshot(path=str(shot_dir / "convert.png"), full_page=True)


def test_text_file_named_wav_gets_a_clear_error(pages: list[Any], tmp_path: Path) -> None:
    page = pages[1]
    fake = tmp_path / "lyrics.wav"
    fake.write_text("verse one: la la la\n" * 10)
    jobs_before = history_ids(page)
    clear_recording(page)
    page.set_input_files("#convert-input input[type=file]", str(fake))
    page.wait_for_function("document.querySelector('#convert-error')?.innerText.includes('not an audio file')")
    page.click("#convert-button")
    page.wait_for_function("document.querySelector('#convert-status')?.innerText.includes('Nothing to convert')")
    text = page.locator("#convert-error").inner_text()
    assert "lyrics.wav is not an audio file" in text and "/tmp" not in text
    assert history_ids(page) == jobs_before  # nothing was queued


def test_calibration_zip_shows_a_validation_summary(pages: list[Any], sung_clip: Any, tmp_path: Path,
                                                    shot_dir: Path) -> None:
    archive = tmp_path / "calibration.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(sung_clip(seconds=2.5, sr=16000, seed=31), "takes/one.wav")
        zf.write(sung_clip(seconds=3.0, sr=22050, seed=32), "takes/two.wav")
        zf.writestr("takes/notes.wav", "not audio")
        zf.writestr("takes/readme.txt", "hello")
    page = pages[1]
    page.get_by_role("tab", name="Calibration").click()
    page.set_input_files("#calibration-upload input[type=file]", str(archive))
    page.wait_for_function("document.querySelector('#calibration-summary')?.innerText.includes('accepted')")
    summary = page.locator("#calibration-summary").inner_text()
    assert "2 file(s) accepted" in summary and "total duration 0 min 5.5 s" in summary and "2 rejected" in summary
    assert "takes/notes.wav" in summary and "not an audio file" in summary and "takes/readme.txt" in summary
    page.locator("#calibration-name input, #calibration-name textarea").first.fill("choir")
    page.screenshot(path=str(shot_dir / "calibration.png"), full_page=True)


def test_voices_and_workers_tabs(pages: list[Any], shot_dir: Path) -> None:
    page = pages[1]
    page.get_by_role("tab", name="Voices").click()
    page.wait_for_function("document.querySelector('#voices-table')?.innerText.includes('testvoice')")
    page.screenshot(path=str(shot_dir / "voices.png"), full_page=True)
    page.get_by_role("tab", name="Workers").click()
    page.wait_for_function("document.querySelector('#workers-table')?.innerText.includes('second-worker')")
    assert "convert" in page.locator("#workers-queues").inner_text()
    page.screenshot(path=str(shot_dir / "workers.png"), full_page=True)


def table_rows(page: Any, selector: str) -> list[list[str]]:
    """The cells of a Dataframe's body rows, as shown (Gradio 6 draws them as a virtual grid of divs)."""
    return page.evaluate("""(sel) => Array.from(document.querySelectorAll(sel + ' [role=row].virtual-row'))
        .map(r => Array.from(r.querySelectorAll('[role=gridcell]')).map(c => c.innerText.trim()))""", selector)


def test_rebuild_streams_the_build_log_and_the_table_shows_the_new_engines(rebuild: Any, stack: Any,
                                                                          shot_dir: Path,
                                                                          cli_env: dict[str, str]) -> None:
    from engine.config import load_config, resolve_engine_dir
    from engine.models.inference import COMPONENT_IO

    page = rebuild
    page.wait_for_function("""() => { const h = window.__engineLog;
        const last = h.length ? h[h.length - 1].v.trim().split('\\n').pop() : '';
        return last.startsWith('finished') || last.startsWith('failed'); }""", timeout=BUILD_TIMEOUT_MS)
    history = page.evaluate("window.__engineLog")
    final = history[-1]["v"].splitlines()
    assert final[-1].startswith("finished"), f"{final}\n{stack.tail()}"
    counts = [len(h["v"].splitlines()) for h in history if h["v"]]
    assert len(counts) >= 4 and counts == sorted(counts), counts  # grew line by line, never rewritten
    assert history[-1]["t"] - history[1]["t"] > 1000
    page.click("#engines-refresh")
    page.wait_for_function("document.querySelector('#engines-table')?.innerText.includes('onnxruntime')")
    built = {r[1]: r for r in table_rows(page, "#engines-table") if r[2:4] == ["onnxruntime", "fp32"]}
    assert set(built) == set(COMPONENT_IO), table_rows(page, "#engines-table")
    folder = resolve_engine_dir(load_config(environ=cli_env)) / "onnxruntime" / "fp32"
    for component, row in built.items():  # built at, freshness and parity error from the manifests on disk
        manifest = json.loads((folder / f"{component}.json").read_text())
        assert row[4] == manifest["created"].replace("T", " ").rstrip("Z") + " UTC", row
        assert row[5].startswith("fresh"), row
        assert row[6] == f"rel. error vs PyTorch {max(manifest['quality']['parity'].values()):.2g}", row
    page.screenshot(path=str(shot_dir / "engines.png"), full_page=True)
