"""``autovoice train --corpus DIR`` : train every component; resumable with the same ``--work``."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the model on a corpus from `autovoice make-dataset`")
    p.add_argument("--corpus", required=True, help="corpus folder (meta.jsonl, phones.json, speakers.json)")
    p.add_argument("--work", default="runs/demo", help="stage checkpoints, feature cache and loss log")
    p.add_argument("--out", default="models/demo/autovoice.pt", help="the final checkpoint")
    p.add_argument("--voices", default="models/demo/voices", help="where built-in voice profiles go")
    p.add_argument("--branch", choices=("content+decoder", "vocoder"), help=argparse.SUPPRESS)
    p.add_argument("--content-steps", type=int, default=1500)
    p.add_argument("--vocoder-steps", type=int, default=3000)
    p.add_argument("--decoder-steps", type=int, default=3000)
    p.add_argument("--content-minutes", type=float, default=10.0)
    p.add_argument("--vocoder-minutes", type=float, default=40.0)
    p.add_argument("--decoder-minutes", type=float, default=30.0)
    p.add_argument("--speaker-clips", type=int, default=8,
                   help="each decoder step conditions on the mean embedding of 1 to N of the voice's clips, as a "
                        "profile made from a few references is (0: one fixed mean per voice)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from engine.config import load_config
    from engine.errors import AutoVoiceError
    from engine.training.run import TrainPlan, builtin_voices, run_branch, train

    corpus = Path(args.corpus)
    if args.speaker_clips < 0:
        raise AutoVoiceError("--speaker-clips must be 0 (a fixed mean per voice) or more")
    if not (corpus / "meta.jsonl").is_file():
        raise AutoVoiceError(f"{corpus} is not a corpus (no meta.jsonl): make one with `autovoice make-dataset`")
    cfg = load_config()
    plan = TrainPlan(corpus=corpus, work=Path(args.work), out=Path(args.out), content_steps=args.content_steps,
                     vocoder_steps=args.vocoder_steps, decoder_steps=args.decoder_steps,
                     content_minutes=args.content_minutes, vocoder_minutes=args.vocoder_minutes,
                     decoder_minutes=args.decoder_minutes, speaker_clips=args.speaker_clips, seed=args.seed)
    if args.branch:
        run_branch(cfg, plan, args.branch)
        return 0
    out = train(cfg, plan)
    made = builtin_voices(cfg, plan, Path(args.voices))
    print(f"wrote {out}; built-in voices: {', '.join(made)}")
    return 0
