"""``autovoice up [--port P] [--cpu]``: a private Redis (only when ``REDIS_URL`` is unset), one worker per
visible GPU (or one CPU worker) and the studio; Ctrl-C or SIGTERM stops workers, studio, then Redis."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", help="serve everything on this machine: Redis (if REDIS_URL is unset), workers, studio")
    p.add_argument("--port", type=int, default=7860, help="studio port")
    p.add_argument("--cpu", action="store_true", help="one CPU worker even when GPUs are present")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from engine.config import load_config
    from workers.supervisor import Supervisor

    return Supervisor(args.port, args.cpu, load_config().data_dir).run()
