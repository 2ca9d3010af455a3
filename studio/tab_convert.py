"""Layout and wiring of the Convert tab (element ids are the browser tests' contract)."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from studio.handlers_convert import ConvertHandlers
from studio.handlers_voices import VoicesHandlers
from studio.history import COLUMNS as HISTORY_COLUMNS

F0_METHODS = ("default", "parselmouth", "harvest", "dio")  # the engine's trackers; default: the config's
BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
FORMATS = ("wav", "flac", "ogg", "mp3")
SAMPLE_RATES = ("same as input", "16000", "22050", "24000", "32000", "44100", "48000")
HISTORY_REFRESH_SECONDS = 2.0


@dataclass
class ConvertTab:
    """The components other tabs update."""

    voice: gr.Dropdown
    timer: gr.Timer


def build(handlers: ConvertHandlers, voices: VoicesHandlers) -> ConvertTab:
    """Create the tab's components (inside an open ``gr.Tab``) and wire its events."""
    state = gr.BrowserState([], storage_key="autovoice-convert-history")
    suggested = gr.State(0)
    with gr.Row():
        with gr.Column(scale=3):
            recording = gr.Audio(sources=["upload", "microphone"], type="filepath", elem_id="convert-input",
                                 label="Recording: upload a file or record (sung or spoken)")
            with gr.Accordion("Batch: several files at once (each is its own job)", open=False):
                batch = gr.File(file_count="multiple", file_types=["audio"], label="Files", elem_id="convert-batch")
            with gr.Accordion("Instrumental track (optional: mixed back under the converted vocal)", open=False):
                backing = gr.Audio(sources=["upload"], type="filepath", label="Instrumental",
                                   elem_id="convert-instrumental")
                backing_gain = gr.Slider(-24, 12, value=0, step=0.5, label="Instrumental level (dB)",
                                         elem_id="convert-instrumental-gain")
        with gr.Column(scale=2):
            voice = gr.Dropdown(label="Voice", choices=[], elem_id="convert-voice")
            transpose = gr.Slider(-24, 24, value=0, step=1, label="Transpose (semitones)",
                                  elem_id="convert-transpose")
            with gr.Row():
                suggestion = gr.Markdown(elem_id="convert-suggestion")
                use_suggested = gr.Button("Use suggested", size="sm", elem_id="convert-use-suggested")
            f0_method = gr.Dropdown(list(F0_METHODS), value="default", label="F0 method", elem_id="convert-f0-method")
            with gr.Row():
                backend = gr.Dropdown(list(BACKENDS), value="auto", label="Backend", elem_id="convert-backend")
                precision = gr.Dropdown(list(PRECISIONS), value="fp32", label="Precision",
                                        elem_id="convert-precision")
            with gr.Row():
                fmt = gr.Dropdown(list(FORMATS), value="wav", label="Output format", elem_id="convert-format")
                sample_rate = gr.Dropdown(list(SAMPLE_RATES), value=SAMPLE_RATES[0], label="Output sample rate",
                                          elem_id="convert-sample-rate")
            with gr.Row():
                convert = gr.Button("Convert", variant="primary", elem_id="convert-button")
                cancel = gr.Button("Cancel", variant="stop", elem_id="convert-cancel")
    error = gr.Markdown(elem_id="convert-error", elem_classes=["av-error"])
    status = gr.Markdown(elem_id="convert-status")
    with gr.Row():
        source = gr.Audio(type="filepath", interactive=False, label="A: original", elem_id="convert-source")
        output = gr.Audio(type="filepath", interactive=False, label="B: converted", buttons=["download"],
                          elem_id="convert-output")
    files = gr.File(file_count="multiple", interactive=False, label="Downloads (one by one, or the zip)",
                    elem_id="convert-files")
    plot = gr.LinePlot(x="time (s)", y="F0 (Hz)", color="track", label="F0: source against converted",
                       elem_id="convert-f0-plot")
    log = gr.Textbox(label="Log", lines=10, max_lines=16, interactive=False, autoscroll=True, elem_id="convert-log")
    table = gr.Dataframe(headers=HISTORY_COLUMNS, interactive=False, label="This browser's jobs (click one to open it)",
                         elem_id="convert-history", wrap=True)
    timer = gr.Timer(HISTORY_REFRESH_SECONDS)

    outputs = [log, status, error, output, source, files, plot, state, table]
    convert.click(handlers.convert, [recording, batch, voice, transpose, f0_method, backend, precision, fmt,
                                     sample_rate, backing, backing_gain, state], outputs,
                  concurrency_limit=None, show_progress="hidden")
    cancel.click(handlers.cancel, [state], [status, table], show_progress="hidden")
    table.select(handlers.open_result, [state], outputs, show_progress="minimal")
    timer.tick(handlers.history_rows, [state], [table], show_progress="hidden")
    for trigger in (recording.change, batch.change, voice.change):
        trigger(voices.suggest, [recording, batch, voice], [suggestion, suggested, error], show_progress="hidden")
    use_suggested.click(lambda s: s, [suggested], [transpose], show_progress="hidden")
    return ConvertTab(voice=voice, timer=timer)
