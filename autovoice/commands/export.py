"""``autovoice export --out DIR``: the five components as ONNX, each with its manifest."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export the five model components to ONNX (with manifests)")
    p.add_argument("--out", required=True, help="folder for <component>.onnx and <component>.json")
    p.add_argument("--checkpoint", default=None, help="checkpoint to export (default: the configured one)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: 18)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from autovoice.commands.common import progress_bar
    from engine.config import load_config
    from engine.export import DEFAULT_OPSET, export_voice_conversion_pipeline

    cfg = load_config()
    paths = export_voice_conversion_pipeline(cfg, args.out, args.checkpoint, opset=args.opset or DEFAULT_OPSET,
                                             log_line=lambda line: print(line, file=sys.stderr),
                                             progress=progress_bar("export"))
    print(f"exported {len(paths)} components to {args.out}: {', '.join(p.name for p in paths.values())}")
    return 0
