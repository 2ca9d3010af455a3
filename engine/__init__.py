"""AutoVoice engine: models, conversion pipeline, export, calibration and inference backends.

A pure library: it imports neither redis nor gradio, so a notebook can use it with no services running.
"""

__version__ = "0.1.0"
