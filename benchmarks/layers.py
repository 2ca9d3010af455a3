"""Layer benchmark: how much faster ONNX Runtime FP32 runs each layer family than PyTorch eager, here.

The speed benchmark compares whole conversions. This asks which layers could move that ratio: each
family is a stack at the model's sizes on one 8 s chunk (800 frames), exported with the engines' exporter
settings and run in one process by PyTorch eager (``inference_mode``) and by ONNX Runtime with the
engines' session options, both on the same number of threads. The two take turns, ``--rounds`` times;
each figure is the median over every timed run. FLOPs are counted as the speed benchmark counts them
(matmuls and convolutions, a multiply-add is 2), so GFLOP/s compares with the machine's matmul peak.

    python -m benchmarks.layers --json benchmarks/results/layers.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

FRAMES = 800  # one 8 s chunk at 10 ms frames
WIDTH = 256   # the content encoder's and mel projection's width
DEPTH = 5     # layers per stack (the content encoder's)


class Stack(nn.Module):
    """``x -> block_1(...block_n(x))`` for layer families without a module in the model."""

    def __init__(self, blocks: list[nn.Module], residual: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + block(x) if self.residual else block(x)
        return x


class ConvNeXtBlock(nn.Module):
    """Depthwise conv, LayerNorm, then a 2x MLP of linear layers, on ``[b, t, c]`` (as Vocos builds them)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.dw = nn.Conv1d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c)
        self.up, self.down = nn.Linear(c, 2 * c), nn.Linear(2 * c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(x.transpose(1, 2)).transpose(1, 2)
        return self.down(F.gelu(self.up(self.norm(y))))


class Gated(nn.Module):
    """The flow's gated WaveNet stack on a ``[b, h, t]`` input, conditioned on ``g`` of the same shape."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        from engine.models.layers import WN

        self.wn = WN(hidden, 5, 2, hidden)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return self.wn(x, torch.ones_like(x[:, :1]), g)


def _norm_gelu(c: int) -> nn.Module:
    from engine.models.layers import ChannelNorm

    return nn.Sequential(ChannelNorm(c), nn.GELU())


@dataclass(frozen=True)
class Family:
    name: str
    what: str
    build: Callable[[int, int], tuple[nn.Module, tuple[torch.Tensor, ...]]]  # (width, frames) -> module, inputs


def _bct(c: int, t: int) -> torch.Tensor:
    return torch.randn(1, c, t)


def _btc(c: int, t: int) -> torch.Tensor:
    return torch.randn(1, t, c)


def _res_conv(c: int, t: int) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    from engine.models.layers import ResConvStack

    return ResConvStack(c, DEPTH, kernel_size=5, dilation_cycle=3), (_bct(c, t),)


FAMILIES = [
    Family("resconv", "the model's ResConvStack: channel norm, GELU, k=5 conv, residual (content encoder body)",
           _res_conv),
    Family("gated_wn", "the model's WN: gated k=5 convs with conditioning, 96 hidden, 2 layers (one flow coupling)",
           lambda c, t: (Gated(96), (_bct(96, t), _bct(96, t)))),
    Family("conv_k5", "plain k=5 Conv1d, c -> c",
           lambda c, t: (Stack([nn.Conv1d(c, c, 5, padding=2) for _ in range(DEPTH)], False), (_bct(c, t),))),
    Family("pointwise_conv", "1x1 Conv1d c -> 2c -> c on [b, c, t]",
           lambda c, t: (Stack([nn.Sequential(nn.Conv1d(c, 2 * c, 1), nn.Conv1d(2 * c, c, 1))
                                for _ in range(DEPTH)], False), (_bct(c, t),))),
    Family("linear", "the same products as Linear c -> 2c -> c on [b, t, c]",
           lambda c, t: (Stack([nn.Sequential(nn.Linear(c, 2 * c), nn.Linear(2 * c, c)) for _ in range(DEPTH)],
                               False), (_btc(c, t),))),
    Family("depthwise_k7", "depthwise k=7 Conv1d (groups = channels)",
           lambda c, t: (Stack([nn.Conv1d(c, c, 7, padding=3, groups=c) for _ in range(DEPTH)], False),
                         (_bct(c, t),))),
    Family("convnext", "ConvNeXt blocks: depthwise k=7, LayerNorm, Linear c -> 2c, GELU, Linear 2c -> c, residual",
           lambda c, t: (Stack([ConvNeXtBlock(c) for _ in range(DEPTH)], True), (_btc(c, t),))),
    Family("norm_gelu", "the model's channel norm and GELU alone (no conv)",
           lambda c, t: (Stack([_norm_gelu(c) for _ in range(DEPTH)], False), (_bct(c, t),))),
]
FAMILY_NAMES = [f.name for f in FAMILIES]


def count_flops(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return int(counter.get_total_flops())


def export(module: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path) -> list[str]:
    """ONNX export as the engines are exported (dynamo exporter, the engines' opset); the input names."""
    from engine.export.onnx_export import DEFAULT_OPSET, quiet_exporter

    names = [f"x{i}" for i in range(len(inputs))]
    with quiet_exporter():
        torch.onnx.export(module, inputs, str(path), input_names=names, output_names=["y"],
                          opset_version=DEFAULT_OPSET, dynamo=True, external_data=False, verbose=False)
    return names


def _timed(step: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        out.append(time.perf_counter() - t0)
    return out


def measure(family: Family, width: int, frames: int, threads: int, rounds: int, runs: int,
            work: Path) -> dict[str, Any]:
    """Both libraries on one family: medians (ms) over ``rounds`` alternating turns of ``runs`` runs each."""
    import onnxruntime as ort

    from engine.backends.onnxruntime_backend import session_options

    torch.manual_seed(0)
    module, inputs = family.build(width, frames)
    module.eval()
    path = work / f"{family.name}.onnx"
    names = export(module, inputs, path)
    session = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
    feed = {n: x.numpy() for n, x in zip(names, inputs, strict=True)}
    with torch.inference_mode():
        expected = module(*inputs).numpy()
        error = float(np.abs(session.run(None, feed)[0] - expected).max() / (np.abs(expected).max() + 1e-12))

        def torch_step() -> None:
            module(*inputs)

        def ort_step() -> None:
            session.run(None, feed)

        torch_step(), ort_step()  # warm-up: thread pools, kernel choice, first allocations
        times: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
        for _ in range(rounds):
            times["torch"] += _timed(torch_step, runs)
            times["onnxruntime"] += _timed(ort_step, runs)
    flops = count_flops(module, inputs)
    t_ms = {k: 1000 * float(np.median(v)) for k, v in times.items()}
    return {"name": family.name, "what": family.what, "gflop": round(flops / 1e9, 4),
            "torch_ms": round(t_ms["torch"], 4), "onnxruntime_ms": round(t_ms["onnxruntime"], 4),
            "ratio": round(t_ms["torch"] / t_ms["onnxruntime"], 3),
            "torch_gflops": round(flops / t_ms["torch"] / 1e6, 1) if flops else None,
            "onnxruntime_gflops": round(flops / t_ms["onnxruntime"] / 1e6, 1) if flops else None,
            "max_rel_error": error}


def run(families: list[str], width: int, frames: int, threads: int, rounds: int, runs: int,
        matmul_seconds: float = 2.0, say: Callable[[str], None] = print) -> dict[str, Any]:
    from benchmarks.machine import describe, load_average, matmul_peak
    from engine.allocator import retain_freed_memory

    retain_freed_memory()  # as a converting process does
    torch.set_num_threads(threads)
    machine = describe(threads)
    machine["matmul_peak"] = matmul_peak(threads, seconds=matmul_seconds)
    chosen = [f for f in FAMILIES if f.name in families]
    layers = []
    with tempfile.TemporaryDirectory(prefix="autovoice-layers-") as tmp:
        for i, family in enumerate(chosen):
            row = measure(family, width, frames, threads, rounds, runs, Path(tmp))
            say(f"[{i + 1}/{len(chosen)}] {family.name}: torch {row['torch_ms']:.2f} ms, onnxruntime "
                f"{row['onnxruntime_ms']:.2f} ms ({row['ratio']:.2f}x)")
            layers.append(row)
    machine["load_average_end"] = load_average()
    return {"machine": machine, "width": width, "frames": frames, "depth": DEPTH, "rounds": rounds,
            "runs_per_round": runs, "layers": layers}


def markdown(data: dict[str, Any], command: str) -> str:
    from benchmarks.report import _f, _table, machine_line

    peak = (data["machine"].get("matmul_peak") or {}).get("gflops")
    trials = (data["machine"].get("matmul_peak") or {}).get("trials_gflops") or {}
    rows = []
    for r in data["layers"]:
        rows.append([r["name"], r["what"], _f(r["gflop"], ".2f"), _f(r["torch_ms"], ".2f"),
                     _f(r["onnxruntime_ms"], ".2f"), f"{r['ratio']:.2f}x",
                     _pct(r["torch_gflops"], peak), _pct(r["onnxruntime_gflops"], peak)])
    gemm = ", ".join(f"{lib} {max(v):.0f}" for lib, v in trials.items() if v)
    lines = [f"Machine: {machine_line(data['machine'])}", "", f"Command: `{command}`", "",
             f"Each stack: {data['depth']} layers (unless said), width {data['width']}, {data['frames']} frames "
             f"({data['frames'] / 100:g} s of audio); "
             f"median of {data['rounds']} x {data['runs_per_round']} runs per library, the two taking turns. "
             f"Float32 GEMM ({gemm or '-'} GFLOP/s, 2048x2048) sets the peak.", "",
             *_table(["layers", "what", "GFLOP", "torch ms", "onnxruntime ms", "ONNX Runtime speedup",
                      "torch GFLOP/s (% of peak)", "onnxruntime GFLOP/s (% of peak)"], rows)]
    return "\n".join(lines) + "\n"


def _pct(gflops: float | None, peak: float | None) -> str:
    if not gflops:
        return "-"
    return f"{gflops:.0f} ({100 * gflops / peak:.0f}%)" if peak else f"{gflops:.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default=",".join(FAMILY_NAMES),
                        help=f"comma-separated, of {', '.join(FAMILY_NAMES)}")
    parser.add_argument("--width", type=int, default=WIDTH)
    parser.add_argument("--frames", type=int, default=FRAMES)
    parser.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 2))
    parser.add_argument("--rounds", type=int, default=5, help="turns each library takes")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per turn")
    parser.add_argument("--matmul-seconds", type=float, default=2.0, help="per trial of the matmul peak")
    parser.add_argument("--json", default=None, help="write the result here, and a markdown table beside it")
    args = parser.parse_args(argv)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = sorted(set(families) - set(FAMILY_NAMES))
    if unknown or not families:
        parser.error(f"unknown layer families {', '.join(unknown) or '(none given)'}; choose from "
                     f"{', '.join(FAMILY_NAMES)}")
    for name, value in (("--width", args.width), ("--frames", args.frames), ("--threads", args.threads),
                        ("--rounds", args.rounds), ("--runs", args.runs)):
        if value < 1:
            parser.error(f"{name} must be at least 1, not {value}")
    if not args.matmul_seconds > 0:
        parser.error(f"--matmul-seconds must be positive, not {args.matmul_seconds}")
    data = run(families, args.width, args.frames, args.threads, args.rounds, args.runs, args.matmul_seconds)
    command = "python -m benchmarks.layers " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(data, command.strip())
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=2) + "\n")
        out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
