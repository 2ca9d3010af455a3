"""Pieces shared by the sub-commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

BACKEND_CHOICES = ("auto", "torch", "onnxruntime", "tensorrt")
PRECISION_CHOICES = ("fp32", "fp16", "int8")


def add_backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                   help="inference backend (auto: TensorRT, then ONNX Runtime, then PyTorch, per component)")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="fp32")
    p.add_argument("--engine-dir", default=None, help="engines/exports folder (overrides the config)")
    p.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default from config)")


_open_bars: list = []  # tqdm bars still drawing; an error message must start on a line of its own


def progress_bar(desc: str) -> Callable[[str, int, int], None]:
    """A ``progress(stage, done, total)`` callback drawing one tqdm bar per stage on stderr."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def update(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=f"{desc} {stage}", unit="chunk" if stage != "analysing"
                                     else "block", file=sys.stderr, leave=True)
            _open_bars.append(bar)
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()
            _open_bars.remove(bar)

    return update


def close_progress_bars() -> None:
    """End every unfinished bar's line (before an error message is printed)."""
    while _open_bars:
        _open_bars.pop().close()


def warn_untrained(trained: bool) -> None:
    if not trained:
        print("autovoice: WARNING: the model checkpoint is UNTRAINED; the output will not sound like the "
              "target voice. Train one with `autovoice train`.", file=sys.stderr)
