"""``autovoice status [--json] [--redis URL]``: queues, workers, Redis memory, failures; the health check.

Exits non-zero when Redis cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="queues, workers, Redis memory and recent failures (exit 1: Redis down)")
    p.add_argument("--redis", metavar="URL", default=None, help="Redis URL (default: $REDIS_URL)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


def _age(ts: float | None) -> str:
    return "-" if not ts else f"{max(time.time() - ts, 0):.0f}s ago"


def _print(report: dict[str, Any]) -> None:
    r = report["redis"]
    print(f"redis {r['version']} ({report['url']}): {r['used_memory_human']} used, up {r['uptime_seconds']} s, "
          f"AOF {'on' if r['aof_enabled'] else 'off'}")
    print("queues:" if report["queues"] else "queues: none yet")
    for q in report["queues"]:
        print(f"  {q['name']:40s} waiting {q['waiting']:4d}  running {q['started']:3d}  finished {q['finished']:5d}"
              f"  failed {q['failed']:4d}")
        if q.get("stalled"):
            print(f"    {q['stalled']} running job(s) with no heartbeat: their worker stopped; a live worker puts "
                  "them back on the queue (once) or fails them")
    print("workers:" if report["workers"] else "workers: none alive (start one with `autovoice worker`)")
    for w in report["workers"]:
        job = w.get("current_job") or "-"
        engines = ", ".join(w.get("engines", {})) or "none loaded"
        print(f"  {w.get('name')}: {w.get('host')} {w.get('gpu')} ({w.get('memory_mb')} MB), {w.get('state')}, "
              f"job {job}, pipelines {engines}, done {w.get('jobs_done')}, failed {w.get('jobs_failed')}, "
              f"seen {_age(w.get('last_seen'))}")
    if report["failures"]:
        print("recent failures:")
        for f in report["failures"]:
            print(f"  {f['job_id']} {f['kind'] or '-'} {f['status']}: {f['error']}")


def run(args: argparse.Namespace) -> int:
    from workers.connection import connect, ping, redis_url, safe_url
    from workers.errors import RedisUnavailable
    from workers.status import cluster_status

    url = redis_url(args.redis)
    conn = connect(url)
    try:
        ping(conn)
    except RedisUnavailable as exc:
        if args.json:
            print(json.dumps({"ok": False, "url": safe_url(url), "error": str(exc)}))
            return 1
        raise
    report = {"ok": True, "url": safe_url(url), **cluster_status(conn)}
    if args.json:
        print(json.dumps(report))
    else:
        _print(report)
    return 0
