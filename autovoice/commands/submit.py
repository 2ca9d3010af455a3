"""``autovoice submit convert IN --voice REF|NAME --redis URL [--wait] [--json] [-o OUT] [--transpose N]``

The last line on stdout is always JSON: ``{"job_id", "status", "error"}`` (with ``--json``: the whole job
record, timings and result included). Log lines of a job followed with ``--wait`` go to stderr as they
are written. Exit status 1 when the job failed, was cancelled, or was refused (queue full).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    from autovoice.commands.common import BACKEND_CHOICES, PRECISION_CHOICES

    p = sub.add_parser("submit", help="submit a job to the queue")
    kinds = p.add_subparsers(dest="submit_kind", required=True, metavar="KIND")
    c = kinds.add_parser("convert", help="convert a recording on a worker")
    c.add_argument("input", help="sung or spoken recording")
    c.add_argument("--voice", required=True, help="target voice: a reference audio file or a voice name")
    c.add_argument("--redis", metavar="URL", default=None, help="Redis URL (default: $REDIS_URL)")
    c.add_argument("--wait", action="store_true", help="follow the job's log until it ends")
    c.add_argument("--json", action="store_true", help="last line: the whole job record")
    c.add_argument("-o", "--output", default=None, help="with --wait: write the converted audio here")
    c.add_argument("--transpose", default="0", help="semitones (e.g. -12, 3.5) or 'auto'")
    c.add_argument("--f0-method", default=None, choices=("parselmouth", "harvest", "dio"))
    c.add_argument("--seed", type=int, default=None)
    c.add_argument("--sample-rate", type=int, default=None)
    c.add_argument("--format", choices=("wav", "flac", "ogg"), default=None)
    c.add_argument("--backend", choices=BACKEND_CHOICES, default="auto")
    c.add_argument("--precision", choices=PRECISION_CHOICES, default="fp32")
    c.add_argument("--timeout", type=float, default=None, help="with --wait: give up after this many seconds")
    c.set_defaults(handler=run_convert)


def _emit(record: dict[str, Any], full: bool) -> None:
    keep = record if full else {k: record.get(k) for k in ("job_id", "status", "error")}
    if not full and record.get("output"):
        keep["output"] = record["output"]
    print(json.dumps(keep), flush=True)


def run_convert(args: argparse.Namespace) -> int:
    from autovoice.commands.convert import parse_transpose
    from engine.audio import OUTPUT_FORMATS, check_output_path
    from workers.connection import connect, ping
    from workers.enqueue import fetch_output, job_info, submit_convert, wait
    from workers.errors import QueueFull, WorkerError

    fmt = args.format
    if args.output:
        if not args.wait:
            raise WorkerError("-o needs --wait: the output is fetched when the job has finished")
        check_output_path(args.output, fmt)  # before any upload: a job whose result cannot be kept is waste
        suffix = Path(args.output).suffix.lstrip(".").lower()
        fmt = fmt or (suffix if suffix in OUTPUT_FORMATS else None)  # -o x.flac asks for FLAC
    options = {"transpose": parse_transpose(args.transpose), "f0_method": args.f0_method, "seed": args.seed,
               "sample_rate": args.sample_rate, "format": fmt}
    options = {k: v for k, v in options.items() if v is not None}
    conn = connect(args.redis)
    ping(conn)
    try:
        job_id = submit_convert(conn, args.input, args.voice, options=options, backend=args.backend,
                                precision=args.precision)
    except QueueFull as exc:
        _emit({"job_id": None, "status": "rejected", "error": str(exc)}, args.json)
        return 1
    print(f"submitted job {job_id}", file=sys.stderr)
    if not args.wait:
        _emit(job_info(conn, job_id), args.json)
        return 0

    def show(entry: Any) -> None:
        if entry.line is not None:
            print(entry.line, file=sys.stderr, flush=True)

    try:
        record = wait(conn, job_id, timeout=args.timeout, on_log=show)
        if record["status"] == "finished" and args.output:
            record["output"] = str(fetch_output(conn, record, args.output))
    except WorkerError as exc:  # timed out, the job vanished, or its output could not be fetched
        _emit({"job_id": job_id, "status": "unknown", "error": str(exc)}, args.json)
        return 1
    _emit(record, args.json)
    return 0 if record["status"] == "finished" else 1
