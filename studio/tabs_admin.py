"""Layout and wiring of the Voices, Engines, Calibration and Workers tabs."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from studio import engines
from studio.handlers_calibration import COLUMNS as CALIBRATION_COLUMNS
from studio.handlers_calibration import CalibrationHandlers
from studio.handlers_engines import NO_CALIBRATION, EnginesHandlers
from studio.handlers_voices import COLUMNS as VOICE_COLUMNS
from studio.handlers_voices import VoicesHandlers
from studio.handlers_workers import FAILED_COLUMNS, QUEUE_COLUMNS, WORKER_COLUMNS, WorkersHandlers

WORKERS_REFRESH_SECONDS = 2.0


@dataclass
class AdminTabs:
    """Components the app's load event and tab switches update."""

    voices_pick: gr.Dropdown
    voices_table: gr.Dataframe
    engines_table: gr.Dataframe
    engines_backend: gr.Dropdown
    engines_calibration: gr.Dropdown
    calibration_sets: gr.Dataframe
    workers_timer: gr.Timer


def voices_tab(h: VoicesHandlers, convert_voice: gr.Dropdown) -> tuple[gr.Dropdown, gr.Dataframe]:
    with gr.Row():
        with gr.Column():
            upload = gr.File(file_count="multiple", file_types=["audio"], label="Reference clips of the voice",
                             elem_id="voices-upload")
            name = gr.Textbox(label="Voice name", placeholder="e.g. alto_anna", elem_id="voices-name")
            create = gr.Button("Create voice", variant="primary", elem_id="voices-create")
            log = gr.Textbox(label="Log", lines=6, interactive=False, autoscroll=True, elem_id="voices-log")
        with gr.Column():
            table = gr.Dataframe(headers=VOICE_COLUMNS, interactive=False, label="Voices", elem_id="voices-table")
            pick = gr.Dropdown(label="Voice", choices=[], elem_id="voices-select")
            listen = gr.Audio(type="filepath", interactive=False, label="Reference clip", elem_id="voices-listen")
            delete = gr.Button("Delete voice", variant="stop", elem_id="voices-delete")
            note = gr.Markdown(elem_id="voices-note")
    create.click(h.create, [name, upload], [log, convert_voice, pick, table], concurrency_limit=None,
                 show_progress="hidden")
    pick.change(h.listen, [pick], [listen], show_progress="hidden")
    table.select(h.pick_row, None, [pick], show_progress="hidden")
    delete.click(h.delete, [pick], [note, convert_voice, pick, table], show_progress="hidden")
    return pick, table


def engines_tab(h: EnginesHandlers) -> tuple[gr.Dataframe, gr.Dropdown, gr.Dropdown]:
    table = gr.Dataframe(headers=engines.COLUMNS, interactive=False, label="Engines per worker host and GPU",
                         elem_id="engines-table", wrap=True)
    with gr.Row():
        backend = gr.Dropdown(["onnxruntime", "tensorrt"], value="onnxruntime", label="Backend",
                              elem_id="engines-backend")
        precision = gr.Dropdown(["fp32", "fp16", "int8"], value="fp32", label="Precision", elem_id="engines-precision")
        calibration = gr.Dropdown([NO_CALIBRATION], value=NO_CALIBRATION, label="Calibration set (for int8)",
                                  elem_id="engines-calibration")
    with gr.Row():
        rebuild = gr.Button("Rebuild engines", variant="primary", elem_id="engines-rebuild")
        refresh = gr.Button("Refresh", elem_id="engines-refresh")
    log = gr.Textbox(label="Build log", lines=12, max_lines=20, interactive=False, autoscroll=True,
                     elem_id="engines-log")
    rebuild.click(h.rebuild, [backend, precision, calibration], [log], concurrency_limit=None,
                  show_progress="hidden").then(h.table, None, [table], show_progress="hidden")
    refresh.click(h.refresh, [backend, calibration], [table, backend, calibration], show_progress="hidden")
    return table, backend, calibration


def calibration_tab(h: CalibrationHandlers, engines_calibration: gr.Dropdown,
                    engines_h: EnginesHandlers) -> gr.Dataframe:
    with gr.Row():
        with gr.Column():
            upload = gr.File(file_count="multiple", file_types=["audio", ".zip"],
                             label="Calibration audio: many files, or one zip", elem_id="calibration-upload")
            name = gr.Textbox(label="Calibration set name", placeholder="e.g. choir_2024", elem_id="calibration-name")
            create = gr.Button("Create calibration set", variant="primary", elem_id="calibration-create")
        with gr.Column():
            summary = gr.Markdown(elem_id="calibration-summary")
            log = gr.Textbox(label="Log", lines=6, interactive=False, autoscroll=True, elem_id="calibration-log")
    sets = gr.Dataframe(headers=CALIBRATION_COLUMNS, interactive=False, label="Calibration sets",
                        elem_id="calibration-sets")
    upload.change(h.summary, [upload], [summary], show_progress="minimal")
    create.click(h.create, [name, upload], [summary, log, sets], concurrency_limit=None,
                 show_progress="hidden").then(engines_h.calibration_choices, [engines_calibration],
                                              [engines_calibration], show_progress="hidden")
    return sets


def workers_tab(h: WorkersHandlers) -> gr.Timer:
    timer = gr.Timer(WORKERS_REFRESH_SECONDS, active=False)
    workers = gr.Dataframe(headers=WORKER_COLUMNS, interactive=False, label="Workers", elem_id="workers-table")
    queues = gr.Dataframe(headers=QUEUE_COLUMNS, interactive=False, label="Queues", elem_id="workers-queues")
    failed = gr.Dataframe(headers=FAILED_COLUMNS, interactive=False, label="Failed jobs", elem_id="jobs-failed",
                          wrap=True)
    with gr.Row():
        pick = gr.Dropdown(label="Failed job to retry", choices=[], elem_id="jobs-retry-select")
        retry = gr.Button("Retry", elem_id="jobs-retry")
    note = gr.Markdown(elem_id="jobs-note")
    outputs = [workers, queues, failed, pick]
    timer.tick(h.refresh, [pick], outputs, show_progress="hidden")
    failed.select(h.pick, None, [pick], show_progress="hidden")
    retry.click(h.retry, [pick], [note, *outputs], show_progress="hidden")
    return timer
