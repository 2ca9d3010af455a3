"""The studio's Gradio Blocks app: five tabs over one Redis, and how it is launched.

Long handlers (a conversion, a rebuild, a calibration) are async generators that wait in XREAD and run
with ``concurrency_limit=None``, so people's jobs run side by side on the workers; short Redis reads
share the queue's default limit. Uploads are capped at ``jobs.max_blob_mb``, Gradio's cache
is swept hourly, and the app is never shared through Gradio's tunnel.
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from studio import tab_convert, tabs_admin
from studio.context import DEFAULT_PORT, Studio
from studio.handlers_calibration import CalibrationHandlers
from studio.handlers_convert import ConvertHandlers
from studio.handlers_engines import EnginesHandlers
from studio.handlers_voices import VoicesHandlers
from studio.handlers_workers import WorkersHandlers

log = logging.getLogger(__name__)

TITLE = "AutoVoice studio"
DELETE_CACHE = (3600, 24 * 3600)   # every hour, drop Gradio cache files older than a day
QUEUE_MAX_SIZE = 512
SHORT_HANDLER_LIMIT = 16           # concurrent quick Redis reads (tables, timers, cancels)
CSS = """
.av-error { color: #b42318; }
#convert-log textarea, #engines-log textarea, #calibration-log textarea, #voices-log textarea {
  font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
"""


def build_app(studio: Studio) -> gr.Blocks:
    """The Blocks app bound to ``studio`` (not launched)."""
    convert_h, voices_h = ConvertHandlers(studio), VoicesHandlers(studio)
    engines_h, calib_h, workers_h = EnginesHandlers(studio), CalibrationHandlers(studio), WorkersHandlers(studio)
    with gr.Blocks(title=TITLE, delete_cache=DELETE_CACHE) as demo:
        gr.Markdown(f"## {TITLE}\nSinging-voice conversion on your workers. Redis: `{studio.describe()['redis']}`")
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("Convert", id="convert", elem_id="tab-convert") as t_convert:
                convert = tab_convert.build(convert_h, voices_h)
            with gr.Tab("Voices", id="voices", elem_id="tab-voices") as t_voices:
                voices_pick, voices_table = tabs_admin.voices_tab(voices_h, convert.voice)
            with gr.Tab("Engines", id="engines", elem_id="tab-engines") as t_engines:
                engines_table, engines_backend, engines_calibration = tabs_admin.engines_tab(engines_h)
            with gr.Tab("Calibration", id="calibration", elem_id="tab-calibration") as t_calibration:
                calibration_sets = tabs_admin.calibration_tab(calib_h, engines_calibration, engines_h)
            with gr.Tab("Workers", id="workers", elem_id="tab-workers") as t_workers:
                workers_timer = tabs_admin.workers_tab(workers_h)

        def timers(convert_on: bool, workers_on: bool) -> tuple[Any, Any]:
            return gr.Timer(active=convert_on), gr.Timer(active=workers_on)

        timer_outputs = [convert.timer, workers_timer]
        t_convert.select(lambda: timers(True, False), None, timer_outputs, show_progress="hidden")
        t_workers.select(lambda: timers(False, True), None, timer_outputs, show_progress="hidden")
        for tab in (t_voices, t_engines, t_calibration):
            tab.select(lambda: timers(False, False), None, timer_outputs, show_progress="hidden")
        t_voices.select(voices_h.refresh, [convert.voice, voices_pick], [convert.voice, voices_pick, voices_table],
                        show_progress="hidden")
        t_engines.select(engines_h.refresh, [engines_backend, engines_calibration],
                         [engines_table, engines_backend, engines_calibration], show_progress="hidden")
        t_calibration.select(calib_h.table, None, [calibration_sets], show_progress="hidden")
        demo.load(voices_h.refresh, [convert.voice, voices_pick], [convert.voice, voices_pick, voices_table],
                  show_progress="hidden")
        demo.load(engines_h.refresh, [engines_backend, engines_calibration],
                  [engines_table, engines_backend, engines_calibration], show_progress="hidden")
    demo.queue(default_concurrency_limit=SHORT_HANDLER_LIMIT, max_size=QUEUE_MAX_SIZE)
    return demo


def launch(studio: Studio, port: int = DEFAULT_PORT, host: str | None = None, block: bool = True) -> gr.Blocks:
    """Serve the app on ``host:port`` (Gradio's default host, or ``$GRADIO_SERVER_NAME``, when ``None``)."""
    studio.wait_for_redis()
    demo = build_app(studio)
    max_mb = max(studio.limits.max_blob_bytes // 2**20, 1)
    log.info("studio on port %d, Redis %s, login %s, uploads up to %d MB", port, studio.describe()["redis"],
             "on" if studio.auth else "off", max_mb)
    demo.launch(server_name=host, server_port=port, share=False, auth=studio.auth or None,
                auth_message="AutoVoice studio: log in" if studio.auth else None, max_file_size=f"{max_mb}mb",
                prevent_thread_lock=not block, show_error=True, theme=gr.themes.Soft(), css=CSS, quiet=True,
                footer_links=["api", "settings"])
    return demo
