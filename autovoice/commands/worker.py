"""``autovoice worker [--gpu N | --cpu] [--redis URL]``"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from autovoice.commands.common import BACKEND_CHOICES, PRECISION_CHOICES

    p = sub.add_parser("worker", help="run a job worker on one GPU (or the CPU), serving a Redis queue")
    device = p.add_mutually_exclusive_group()
    device.add_argument("--gpu", type=int, metavar="N", help="physical GPU index (default: 0 when a GPU exists)")
    device.add_argument("--cpu", action="store_true", help="run on the CPU, hiding every GPU")
    p.add_argument("--redis", metavar="URL", default=None,
                   help="Redis URL (default: $REDIS_URL, else redis://localhost:6379/0)")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto", help="pipeline loaded at start")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="fp32")
    p.add_argument("--workers-per-host", type=int, default=None, metavar="N",
                   help="workers sharing this host's cores (default: $AUTOVOICE_WORKERS_PER_HOST or 1)")
    p.add_argument("--name", default=None, help="worker name (default: host.device.pid.random)")
    p.add_argument("--burst", action="store_true", help="exit once the queues are empty")
    p.add_argument("--no-preload", action="store_true", help="load the pipeline on the first job instead")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from workers.hostinfo import visible_gpus
    from workers.serve import pin_environment, serve

    if args.cpu:
        gpu = None
    elif args.gpu is not None:
        gpu = args.gpu
    else:
        gpus = visible_gpus()
        gpu = gpus[0] if gpus else None
    pin_environment(gpu, args.workers_per_host)  # before anything imports torch
    return serve(args.redis, gpu, backend=args.backend, precision=args.precision, burst=args.burst,
                 preload=not args.no_preload, name=args.name)
