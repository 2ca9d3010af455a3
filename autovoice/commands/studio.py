"""``autovoice studio [--redis URL] [--port P] [--host H]``: the Gradio web app (talks only to Redis)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("studio", help="serve the web studio (convert, voices, engines, calibration, workers)")
    p.add_argument("--redis", default=None, help="Redis URL (default: $REDIS_URL or redis://localhost:6379/0)")
    p.add_argument("--port", type=int, default=7860, help="port to serve on (default 7860)")
    p.add_argument("--host", default=None,
                   help="address to bind (default: $GRADIO_SERVER_NAME or 127.0.0.1; 0.0.0.0 for every interface)")
    p.set_defaults(handler=run)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # Gradio's serving loop closes the server on it


def run(args: argparse.Namespace) -> int:
    import signal

    from studio.app import launch
    from studio.auth import auth_from_env
    from studio.context import Studio

    studio = Studio(url=args.redis, auth=auth_from_env())
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        launch(studio, port=args.port, host=args.host)
    finally:
        studio.close()
    return 0
