"""``autovoice jobs [--json] [--redis URL] [--limit N] [--cancel JOB_ID]``: recent jobs with status, worker, timings."""

from __future__ import annotations

import argparse
import json
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("jobs", help="list recent jobs (status, worker, timings), or cancel one")
    p.add_argument("--redis", metavar="URL", default=None, help="Redis URL (default: $REDIS_URL)")
    p.add_argument("--json", action="store_true", help="print one JSON list")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--cancel", metavar="JOB_ID", default=None, help="cancel this job instead of listing")
    p.set_defaults(handler=run)


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def run(args: argparse.Namespace) -> int:
    from workers.connection import connect, ping
    from workers.enqueue import cancel, list_jobs

    conn = connect(args.redis)
    ping(conn)
    if args.cancel:
        status = cancel(conn, args.cancel)
        print(json.dumps({"job_id": args.cancel, "status": status}))
        return 0
    jobs = list_jobs(conn, args.limit)
    if args.json:
        print(json.dumps(jobs))
        return 0
    if not jobs:
        print("no jobs yet")
        return 0
    print(f"{'job':32s} {'kind':13s} {'status':9s} {'worker':36s} {'enqueued':19s} {'wait s':>7s} {'run s':>7s}")
    for j in jobs:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(j["enqueued_at"])) if j["enqueued_at"] else "-"
        print(f"{j['job_id']:32s} {j['kind'] or '-':13s} {j['status']:9s} {j['worker'] or '-':36s} {when:19s} "
              f"{_secs(j['wait_seconds']):>7s} {_secs(j['run_seconds']):>7s}"
              + (f"  {j['error']}" if j["error"] else ""))
    return 0
