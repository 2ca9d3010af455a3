"""``autovoice voices add NAME REF.wav [...]`` | ``voices list`` | ``voices delete NAME``"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("voices", help="manage target voice profiles")
    vs = p.add_subparsers(dest="voices_command", required=True, metavar="ACTION")
    add = vs.add_parser("add", help="create a voice from one or more reference clips")
    add.add_argument("name")
    add.add_argument("references", nargs="+")
    add.set_defaults(handler=run_add)
    ls = vs.add_parser("list", help="list voices")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=run_list)
    rm = vs.add_parser("delete", help="delete a user voice")
    rm.add_argument("name")
    rm.set_defaults(handler=run_delete)


def _store():
    from engine.config import load_config
    from engine.voices import default_store

    return default_store(load_config())


def run_add(args: argparse.Namespace) -> int:
    store = _store()
    replacing = (store.user_dir / args.name / "profile.json").is_file()
    profile = store.add(args.name, args.references)
    f0 = f"{profile.median_f0:.1f} Hz" if profile.median_f0 else "unvoiced"
    print(f"voice {profile.name}: {profile.n_clips} clip(s), {profile.seconds:.1f} s, median F0 {f0}"
          + (" (replaced the voice of that name)" if replacing else ""))
    return 0


def run_list(args: argparse.Namespace) -> int:
    voices = _store().profiles()
    if args.json:
        print(json.dumps([v.describe() for v in voices]))
        return 0
    for v in voices:
        f0 = f"{v.median_f0:7.1f} Hz" if v.median_f0 else "      -   "
        print(f"{v.name:24s} {v.source:8s} {v.n_clips:3d} clip(s) {v.seconds:7.1f} s  median F0 {f0}")
    if not voices:
        print("no voices yet: add one with `autovoice voices add NAME REF.wav`")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    _store().delete(args.name)
    print(f"deleted voice {args.name}")
    return 0
