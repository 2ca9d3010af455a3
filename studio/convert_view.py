"""What the Convert handlers send to the page: one tuple in a fixed order of outputs."""

from __future__ import annotations

from typing import Any

import gradio as gr

OUTPUTS = ("log", "status", "error", "output", "source", "files", "plot", "state", "table")
MAX_LOG_LINES = 400
View = tuple[Any, ...]
_UNSET = object()


def view(log: list[str] | object = _UNSET, status: str | object = _UNSET, error: str | object = _UNSET,
         output: Any = _UNSET, source: Any = _UNSET, files: Any = _UNSET, plot: Any = _UNSET,
         state: Any = _UNSET, table: Any = _UNSET) -> View:
    """Values for :data:`OUTPUTS`; anything not given is left as it is on the page."""
    values = {"log": log, "status": status, "error": error, "output": output, "source": source, "files": files,
              "plot": plot, "state": state, "table": table}
    if isinstance(values["log"], list):
        values["log"] = "\n".join(values["log"][-MAX_LOG_LINES:])  # type: ignore[index]
    if isinstance(values["error"], str):
        text = values["error"]
        values["error"] = f"**Error**\n\n{text}" if text else ""
    return tuple(gr.skip() if values[k] is _UNSET else values[k] for k in OUTPUTS)
