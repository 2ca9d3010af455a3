"""``autovoice eval --corpus DIR [--checkpoint PATH] [--json OUT.json] [--max-pairs N]``: measure conversion
quality on held-out songs against the envelope-swap and oracle baselines (see :mod:`engine.evaluation`)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_MAX_PAIRS = 24


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="measure conversion quality on held-out songs and voices (with baselines)")
    add_arguments(p)
    p.set_defaults(handler=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from autovoice.commands.common import BACKEND_CHOICES, PRECISION_CHOICES

    p.add_argument("--corpus", required=True, help="corpus folder from `autovoice make-dataset`")
    p.add_argument("--checkpoint", default=None, help="model checkpoint (default: paths.checkpoint of the config)")
    p.add_argument("--json", default=None, help="write every per-pair measurement and the summary here")
    p.add_argument("--markdown", default=None,
                   help="write the table as markdown here (default: beside --json, with a .md suffix)")
    p.add_argument("--max-pairs", type=int, default=DEFAULT_MAX_PAIRS,
                   help=f"pairs to evaluate, half seen and half unseen targets (default {DEFAULT_MAX_PAIRS}; 0 = all)")
    p.add_argument("--references", type=int, default=2,
                   help="sung reference clips per voice to score similarity, and as many again as its profile")
    p.add_argument("--systems", default="autovoice,envelope_swap,oracle",
                   help="comma-separated systems to run (autovoice, envelope_swap, oracle)")
    p.add_argument("--seed", type=int, default=0, help="pair selection")
    p.add_argument("--cache-dir", default=None,
                   help="cache of corpus-clip measurements (default: <data_dir>/eval_cache)")
    p.add_argument("--audio-dir", default=None, help="keep every converted clip here")
    p.add_argument("--profiles", choices=("references", "builtin"), default="references",
                   help="the model's target voices: built from reference clips of other songs (default), or the "
                        "built-in voices (paths.builtin_voices) named after the corpus speakers")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="torch")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="fp32")
    p.add_argument("--engine-dir", default=None, help="engines/exports folder (overrides the config)")
    p.add_argument("--device", default=None, help="torch device (default from config)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for the model and Resemblyzer (default 1: on shared cores more threads "
                        "spin against each other; Resemblyzer ran 10x slower with 2 threads on a busy 2-core box)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _config(checkpoint: str | None, threads: int) -> Any:
    import dataclasses

    from engine.config import load_config

    cfg = load_config()
    cfg = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, threads=threads))
    if checkpoint:
        cfg = dataclasses.replace(cfg, paths=dataclasses.replace(cfg.paths, checkpoint=str(Path(checkpoint).resolve())))
    return cfg


def run(args: argparse.Namespace) -> int:
    from autovoice.commands.common import warn_untrained
    from engine.errors import AutoVoiceError
    from engine.evaluation import report
    from engine.evaluation.corpus import EvalCorpus
    from engine.evaluation.runner import SYSTEMS, EvalSettings, evaluate

    systems = tuple(s.strip() for s in args.systems.split(",") if s.strip())
    if not systems or set(systems) - set(SYSTEMS):
        raise AutoVoiceError(f"--systems takes a comma-separated subset of {', '.join(SYSTEMS)}")
    if args.max_pairs < 0 or args.references < 1 or args.threads < 1:
        raise AutoVoiceError("--max-pairs must be >= 0, --references and --threads >= 1")
    cfg = _config(args.checkpoint, args.threads)
    corpus = EvalCorpus(args.corpus)
    argv = sys.argv[sys.argv.index("eval") + 1:] if "eval" in sys.argv else sys.argv[1:]
    header: dict[str, Any] = {"command": "autovoice eval " + shlex.join(argv),
                              "corpus": str(Path(args.corpus).resolve())}
    converter = None
    if "autovoice" in systems:
        from engine.pipeline import Converter
        from engine.runners import load_runners

        runners = load_runners(cfg, args.backend, args.precision, args.engine_dir, args.device)
        warn_untrained(runners.trained)
        ckpt = runners.checkpoint
        header |= {"checkpoint": str(ckpt.path) if ckpt else None, "checkpoint_sha256": ckpt.sha256 if ckpt else None,
                   "trained": runners.trained, "backend": ", ".join(f"{k}={v}" for k, v in runners.describe().items())}
        converter = Converter(cfg, runners)
    import torch

    torch.set_num_threads(args.threads)
    settings = EvalSettings(max_pairs=args.max_pairs or None, references=args.references, seed=args.seed,
                            systems=systems, audio_dir=Path(args.audio_dir) if args.audio_dir else None,
                            voices_dir=cfg.builtin_voices_dir if args.profiles == "builtin" else None)
    cache_dir = Path(args.cache_dir) if args.cache_dir else cfg.data_dir / "eval_cache"
    t0 = time.perf_counter()
    records = evaluate(corpus, settings, converter=converter, cache_dir=cache_dir, progress=not args.no_progress)
    header |= {"pairs": len(records), "seconds": round(time.perf_counter() - t0, 1)}
    summary = report.summarize(records, systems)
    check_list = report.checks(summary) if "autovoice" in systems else []
    print(report.text_table(summary))
    for c in check_list:
        print(f"{'PASS' if c['passed'] else 'FAIL'}  {c['group']:6s}  {c['check']}: "
              f"{c['value']:.3f} (threshold {c['threshold']})")
    if header.get("trained") is False:
        print("NOTE: the checkpoint is UNTRAINED; these figures do not describe a usable model.")
    result = {**header, "settings": settings.describe(), "summary": summary, "checks": check_list,
              "pairs": records, "metric_keys": list(report.METRICS)}
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report.json_safe(result), indent=1) + "\n")
        print(f"wrote {path}")
    markdown = args.markdown or (str(Path(args.json).with_suffix(".md")) if args.json else None)
    if markdown:
        md = Path(markdown)
        md.parent.mkdir(parents=True, exist_ok=True)
        md.write_text(report.markdown_report(summary, header, check_list))
        print(f"wrote {md}")
    return 0
