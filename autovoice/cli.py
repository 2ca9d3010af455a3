"""``autovoice`` entry point.

Each sub-command lives in ``autovoice/commands/<name>.py`` with ``register(subparsers)``; heavy imports
(torch, onnxruntime, gradio, redis) happen inside the command's handler, so ``autovoice --help`` is fast
and the studio never loads torch. Errors a user can act on print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys

COMMAND_MODULES = (
    "convert",
    "voices",
    "worker", "submit", "jobs", "status", "up",
    "make_dataset",
    "train",
    "eval",
    "studio",
    "export",
    "calibrate",
    "build_engines",
    "bench",
)
# Commands that write a result atomically: SIGTERM unwinds them as Ctrl-C does, so nothing half-written stays.
# Services (worker, up, studio) and training handle SIGTERM their own way.
CLEAN_ON_SIGTERM = ("convert", "calibrate", "build-engines", "export", "voices", "submit")
EXIT_USAGE = 2
EXIT_FAILURE = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autovoice", description="AutoVoice singing-voice conversion")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"autovoice.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from autovoice.commands.common import close_progress_bars
    from autovoice.errors import user_errors

    if args.command in CLEAN_ON_SIGTERM:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt as exc:
        close_progress_bars()
        terminated = isinstance(exc, Terminated)
        print(f"autovoice: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    except user_errors() as exc:
        close_progress_bars()
        print(f"autovoice: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is, so it cleans up as on Ctrl-C (no half-written output)."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


if __name__ == "__main__":
    sys.exit(main())
