"""``autovoice bench --input WAV --voice REF --json OUT.json [--backends ...] [--repeats N]``

Every available backend/precision measured side by side, each in its own process, their runs interleaved
round by round; writes the JSON, a markdown table (``OUT.md``) and a plot (``OUT.png``). See :mod:`benchmarks.harness`.
"""

from __future__ import annotations

import argparse
import shlex
import sys


def _floats(value: str) -> list[float]:
    from engine.errors import AutoVoiceError

    try:
        return [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise AutoVoiceError(f"expected comma-separated seconds (e.g. 10,60,600), not {value!r}") from None


def _ints(value: str) -> list[int]:
    from engine.errors import AutoVoiceError

    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise AutoVoiceError(f"expected comma-separated counts (e.g. 1,2), not {value!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark every available backend and precision side by side")
    p.add_argument("--input", required=True, help="recording to convert (the fixed chunk is its start)")
    p.add_argument("--voice", required=True, help="target voice: a reference audio file or a voice name")
    p.add_argument("--json", required=True, metavar="OUT.json", help="results; OUT.md and OUT.png are written beside")
    p.add_argument("--backends", nargs="+", default=None, metavar="TARGET",
                   help="all (default), torch, onnxruntime, tensorrt, or backend/precision labels such as "
                        "onnxruntime/int8, tensorrt/fp16, torch/fp16@cuda; torch/fp32 (the reference) always runs")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per measurement, after the warm-up")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs before timing the chunk")
    p.add_argument("--e2e-repeats", type=int, default=3,
                   help="whole-file conversions per backend, one per interleaved round")
    p.add_argument("--threads", type=int, default=0, help="threads per backend, the same for torch and ONNX "
                                                          "Runtime (default: runtime.threads, else all cores)")
    p.add_argument("--chunk-seconds", type=float, default=None, help="fixed chunk (default: inference.chunk_seconds)")
    p.add_argument("--engine-dir", default=None, help="artifacts to use or build (default: DATA_DIR/bench/engines)")
    p.add_argument("--checkpoint", default=None, help="model checkpoint (default: paths.checkpoint)")
    calib = p.add_mutually_exclusive_group()
    calib.add_argument("--calibration", default=None, metavar="NPZ", help="calibration set for INT8 builds")
    calib.add_argument("--calibration-dir", default=None, metavar="DIR",
                       help="audio to make the calibration set from (default: the input)")
    p.add_argument("--scaling", type=_floats, default=[10.0, 60.0, 600.0], metavar="S,S,...",
                   help="input lengths for the scaling table (default 10,60,600; empty string: none)")
    p.add_argument("--scaling-backends", nargs="+", default=["onnxruntime/fp32"], metavar="TARGET")
    p.add_argument("--pool-workers", type=_ints, default=[1, 2], metavar="N,N,...",
                   help="worker counts for the queue throughput (default 1,2; empty string: none)")
    p.add_argument("--pool-jobs", type=int, default=8, help="jobs per worker count")
    p.add_argument("--pool-backend", default="onnxruntime/fp32", metavar="TARGET")
    p.add_argument("--no-hardware", action="store_true", help="skip the matmul peak and FLOP counting")
    p.add_argument("--matmul-seconds", type=float, default=2.0, help="length of each of the matmul peak's 3 trials")
    p.add_argument("--markdown", default=None, help="markdown output (default: OUT.md)")
    p.add_argument("--plot", default=None, help="PNG output (default: OUT.png)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmarks.harness import BenchSettings, run_benchmark
    from engine.errors import AutoVoiceError

    if args.repeats < 1 or args.e2e_repeats < 1 or args.warmup < 0 or args.pool_jobs < 1:
        raise AutoVoiceError("--repeats, --e2e-repeats and --pool-jobs must be at least 1, --warmup at least 0")
    settings = BenchSettings(
        input=Path(args.input), voice=args.voice, json_out=Path(args.json),
        markdown=Path(args.markdown) if args.markdown else None, plot=Path(args.plot) if args.plot else None,
        targets=args.backends, repeats=args.repeats, warmup=args.warmup, e2e_repeats=args.e2e_repeats,
        threads=args.threads, chunk_seconds=args.chunk_seconds,
        engine_dir=Path(args.engine_dir) if args.engine_dir else None,
        checkpoint=Path(args.checkpoint) if args.checkpoint else None,
        calibration=Path(args.calibration) if args.calibration else None,
        calibration_dir=Path(args.calibration_dir) if args.calibration_dir else None,
        scaling_seconds=args.scaling, scaling_targets=args.scaling_backends, pool_workers=args.pool_workers,
        pool_jobs=args.pool_jobs, pool_target=args.pool_backend, hardware=not args.no_hardware,
        matmul_seconds=args.matmul_seconds,
        command="autovoice " + shlex.join(sys.argv[1:]))
    data = run_benchmark(settings, say=lambda line: print(line, file=sys.stderr, flush=True))
    for r in data["results"]:
        print(f"{r['label']:24s} RTF {r['rtf']:.3f} (without F0 {r['rtf_no_f0']:.3f}), speedup "
              f"{r.get('speedup', 1.0):.2f}x, peak {r['peak_mb']:.0f} MB")
    for s in data["skipped"]:
        print(f"{s['label']:24s} skipped: {s['reason']}")
    return 0
