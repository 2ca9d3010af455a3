"""``autovoice convert IN -o OUT --voice REF.wav|NAME``"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from autovoice.commands.common import add_backend_args

    p = sub.add_parser("convert", help="convert a recording to a target voice")
    p.add_argument("input", help="sung or spoken recording (wav, flac, ogg, mp3)")
    p.add_argument("-o", "--output", required=True, help="output file (.wav, .flac or .ogg)")
    p.add_argument("--voice", required=True, help="target voice: a reference audio file or a voice name")
    p.add_argument("--transpose", default="0", help="semitones (e.g. -12, 3.5) or 'auto'")
    p.add_argument("--f0-method", default=None, choices=("parselmouth", "harvest", "dio"))
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--temperature", type=float, default=None, help="flow sampling temperature (0 = mode)")
    p.add_argument("--sample-rate", type=int, default=None, help="output rate (default: the input's)")
    p.add_argument("--format", choices=("wav", "flac", "ogg"), default=None)
    add_backend_args(p)
    p.set_defaults(handler=run)


def parse_transpose(value: str) -> float | str:
    from engine.errors import AutoVoiceError

    if value == "auto":
        return "auto"
    try:
        return float(value)
    except ValueError:
        raise AutoVoiceError(f"--transpose must be a number of semitones or 'auto', not {value!r}") from None


def run(args: argparse.Namespace) -> int:
    from autovoice.commands.common import progress_bar, warn_untrained
    from engine.audio import check_output_path, probe
    from engine.config import load_config
    from engine.options import ConvertOptions, check_options

    cfg = load_config()
    options = ConvertOptions(transpose=parse_transpose(args.transpose), f0_method=args.f0_method, seed=args.seed,
                             temperature=args.temperature, sample_rate=args.sample_rate, format=args.format)
    # Refuse bad input before importing torch or loading any model: the answer comes in a second.
    check_options(options)
    check_output_path(args.output, args.format)
    probe(args.input, cfg.inference.max_input_seconds)

    from engine.pipeline import Converter
    from engine.runners import load_runners
    from engine.voices import default_store, resolve_voice

    runners = load_runners(cfg, args.backend, args.precision, args.engine_dir, args.device)
    warn_untrained(runners.trained)
    voice = resolve_voice(args.voice, default_store(cfg))
    result = Converter(cfg, runners).convert_file(
        args.input, args.output, voice, options, progress=progress_bar("convert"),
        log_line=lambda line: print(line, file=sys.stderr))
    if args.transpose == "auto":
        print(f"transpose: {result.transpose:+.0f} semitones (auto)")
    backends = ", ".join(f"{k}={v}" for k, v in result.components.items())
    print(f"wrote {result.output} ({result.samples} samples at {result.sample_rate} Hz, "
          f"{result.input_seconds:.2f} s, RTF {result.rtf:.3f}; {backends})")
    return 0
