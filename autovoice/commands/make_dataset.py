"""``autovoice make-dataset --out DIR [--seed N] [--songs N]``: render the offline training corpus."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("make-dataset", help="render a multi-speaker singing + speech training corpus "
                       "from Debian voices (MBROLA, festival, flite)")
    p.add_argument("--out", required=True, help="corpus folder (an existing corpus there is replaced)")
    p.add_argument("--seed", type=int, default=0, help="songs, sentences and splits follow from it")
    p.add_argument("--songs", type=int, default=300, help="number of random songs (each sung by every voice)")
    p.add_argument("--speech", type=int, default=None, help="number of spoken sentences (default: songs / 4)")
    p.add_argument("--workers", type=int, default=None, help="rendering processes (default: CPU cores)")
    p.add_argument("--no-install", action="store_true",
                   help="do not apt-install missing voices (even as root); fail instead")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from engine.data.corpus import make_dataset
    from engine.errors import AutoVoiceError

    if args.songs < 1 or (args.speech is not None and args.speech < 0):
        raise AutoVoiceError("--songs must be at least 1 and --speech not negative")
    out = make_dataset(args.out, seed=args.seed, n_songs=args.songs, n_speech=args.speech,
                       workers=args.workers, install=not args.no_install)
    manifest = json.loads((out / "corpus.json").read_text())
    print(f"corpus: {out}  clips: {manifest['clips']}  hours: {manifest['hours']}  "
          f"speakers: {len(manifest['seconds_per_speaker'])}  splits: {manifest['splits']}")
    return 0
