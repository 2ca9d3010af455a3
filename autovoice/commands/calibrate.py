"""``autovoice calibrate DIR_OR_ZIP -o calibration.npz``: an INT8 calibration set from real recordings."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="record every component's inputs on a folder or zip of recordings")
    p.add_argument("source", help="folder or .zip of sung (or spoken) recordings")
    p.add_argument("-o", "--output", required=True, help="calibration set to write (.npz)")
    p.add_argument("--max-crops", type=int, default=None, help="most crops to keep (default 48)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from autovoice.commands.common import progress_bar
    from engine.calibration import DEFAULT_MAX_CROPS, make_calibration_set
    from engine.config import load_config

    cfg = load_config()
    max_crops = DEFAULT_MAX_CROPS if args.max_crops is None else args.max_crops
    summary = make_calibration_set(cfg, args.source, args.output, max_crops=max_crops,
                                   log_line=lambda line: print(line, file=sys.stderr),
                                   progress=progress_bar("calibrate"))
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"wrote {summary['output']}: {summary['crops']} crop(s) from {summary['files']} file(s), "
              f"{summary['total_seconds']:.1f} s of audio; {len(summary['rejected'])} file(s) rejected")
    return 0
