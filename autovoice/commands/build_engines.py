"""``autovoice build-engines --backend onnxruntime|tensorrt --precision fp32|fp16|int8 ...``"""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build-engines", help="build ONNX Runtime models or TensorRT engines and make them active")
    p.add_argument("--backend", required=True, choices=("onnxruntime", "tensorrt"))
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8"))
    p.add_argument("--calibration", default=None, help="calibration set (.npz from `autovoice calibrate`); int8")
    p.add_argument("--onnx-dir", default=None, help="an `autovoice export` folder (default: export now)")
    p.add_argument("--engine-dir", default=None, help="engines folder (overrides the config)")
    p.add_argument("--int8-mode", default="qdq", choices=("qdq", "calibrator"),
                   help="TensorRT 10: judged Q/DQ models (default) or implicit INT8 with a calibrator")
    p.add_argument("--device", default=None, help="cuda or cuda:N for TensorRT / ONNX Runtime CUDA")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from autovoice.commands.common import progress_bar
    from engine.build import build_engines
    from engine.config import load_config

    cfg = load_config()
    summary = build_engines(cfg, args.backend, args.precision, calibration=args.calibration, onnx_dir=args.onnx_dir,
                            engine_dir=args.engine_dir, int8_mode=args.int8_mode, device=args.device,
                            log_line=lambda line: print(line, file=sys.stderr), progress=progress_bar("build"))
    if args.json:
        print(json.dumps(summary))
    else:
        parts = ", ".join(f"{c}={r['precision']}" for c, r in summary["components"].items())
        print(f"{args.backend} {args.precision} active in {summary['folder']} ({parts})")
    return 0
