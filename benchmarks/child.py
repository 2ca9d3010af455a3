"""One measurement in its own process: ``python -m benchmarks.child SPEC.json OUT.json``.

Each backend/precision is measured in a fresh process, so its peak RSS (which never goes down) is its own
and no backend inherits another's warmed caches or thread pools. Modes:

* ``backend``: load the five components for one backend/precision, then take rounds one at a time from the
  harness over stdin (:func:`serve_rounds`), so the rounds of every backend alternate: each times some
  runs of every component on a fixed chunk and converts the whole input with and without F0 extraction.
* ``scale``: convert one long input once (after a warm-up chunk): RTF and peak memory at that length.
* ``hardware``: the machine's float32 matmul peak and each component's FLOPs on the fixed chunk.

The parent (:mod:`benchmarks.harness`) sets the environment: thread counts, device, checkpoint.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

COMPONENTS = ("content_encoder", "pitch_encoder", "flow_decoder", "mel_projection", "vocoder")


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb() -> float:
    """This process's peak RSS. ``VmHWM`` belongs to the process's own address space; ``ru_maxrss`` is kept
    across ``exec`` and so can report the parent's size at the fork (used only where there is no /proc)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def summary_ms(seconds: list[float]) -> dict[str, Any]:
    """Median and spread of a list of durations, in milliseconds."""
    ms = sorted(s * 1000.0 for s in seconds)
    q1, q3 = (np.percentile(ms, [25, 75]) if len(ms) > 1 else (ms[0], ms[0]))
    return {"median_ms": round(statistics.median(ms), 3), "min_ms": round(ms[0], 3), "max_ms": round(ms[-1], 3),
            "iqr_ms": round(float(q3 - q1), 3), "stdev_ms": round(statistics.stdev(ms), 3) if len(ms) > 1 else 0.0,
            "n": len(ms)}


class TimedRunner:
    """Wraps a component runner; records the wall time of every call (and optionally its inputs)."""

    def __init__(self, runner: Any, record_inputs: bool = False) -> None:
        self.runner = runner
        self.component, self.backend, self.precision = runner.component, runner.backend, runner.precision
        self.times: list[float] = []
        self.record_inputs = record_inputs
        self.inputs: dict[str, np.ndarray] | None = None

    def __call__(self, **inputs: np.ndarray) -> np.ndarray:
        if self.record_inputs:
            self.inputs = {k: np.array(v, copy=True) for k, v in inputs.items()}
        t0 = time.perf_counter()
        out = self.runner(**inputs)
        self.times.append(time.perf_counter() - t0)
        return out


def load_setup(spec: dict[str, Any]) -> tuple[Any, Any, Any]:
    """``(cfg, runners, voice)`` for the spec's backend/precision/device."""
    from engine.config import load_config
    from engine.runners import load_runners
    from engine.voices import VoiceProfile

    cfg = load_config()
    runners = load_runners(cfg, spec["backend"], spec["precision"], spec.get("engine_dir"), spec["device"])
    voice = VoiceProfile(name="bench", embedding=np.load(spec["voice_embedding"], allow_pickle=False),
                         median_f0=spec.get("voice_median_f0"), source="bench")
    return cfg, runners, voice


def fixed_chunk(cfg: Any, path: str, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """The first ``seconds`` of the input at the model's rate (whole frames) and its F0 per frame."""
    from engine.audio import AudioSource
    from engine.f0 import extract_f0

    sr, hop = cfg.audio.sample_rate, cfg.audio.hop_length
    with AudioSource(path, sr, cfg.inference.max_input_seconds) as src:
        frames = min(int(seconds * sr) // hop, src.length // hop)
        audio = src.read(0, frames * hop).astype(np.float32)
    f0 = extract_f0(audio, sr, hop, cfg.inference.f0_method, cfg.audio.f0_min, cfg.audio.f0_max)
    return audio, f0[:frames].astype(np.float32)


def run_span(conv: Any, audio: np.ndarray, f0: np.ndarray, voice: Any) -> np.ndarray:
    """The five components on one chunk, as the pipeline runs them (frame 0, the config's seed/temperature)."""
    inf = conv.cfg.inference
    return conv._convert_span(audio, f0, 0.0, voice.embedding, 0, inf.seed, inf.temperature)


class _Swapped:
    """The converter's runners replaced by :class:`TimedRunner` wrappers while the block runs."""

    def __init__(self, conv: Any, timed: dict[str, TimedRunner]) -> None:
        self.conv, self.timed = conv, timed
        self.originals = {c: getattr(conv.runners, c) for c in timed}

    def __enter__(self) -> None:
        for c, t in self.timed.items():
            setattr(self.conv.runners, c, t)

    def __exit__(self, *exc: object) -> None:
        for c, r in self.originals.items():
            setattr(self.conv.runners, c, r)


def component_inputs(conv: Any, audio: np.ndarray, f0: np.ndarray, voice: Any) -> dict[str, dict[str, np.ndarray]]:
    """What each component is given when the pipeline converts the fixed chunk."""
    recorders = {c: TimedRunner(getattr(conv.runners, c), record_inputs=True) for c in COMPONENTS}
    with _Swapped(conv, recorders):
        run_span(conv, audio, f0, voice)
    return {c: r.inputs for c, r in recorders.items() if r.inputs is not None}


def known_analysis_converter(conv: Any, analysis: Any) -> Any:
    """A converter over the same runners whose F0/loudness pass returns ``analysis`` (measured beforehand),
    so a conversion's time is the model's and the streaming's alone."""
    from engine.pipeline import Converter

    class _KnownAnalysis(Converter):
        def analyse(self, src: Any, method: str, progress: Any = None) -> Any:
            return analysis

    return _KnownAnalysis(conv.cfg, conv.runners)


class BackendMeasurement:
    """One backend/precision, measured in rounds: :meth:`round` times some runs of the fixed chunk (each
    component, and F0 extraction on it) and one whole-file conversion with and one without F0 extraction.

    The harness interleaves the rounds of every backend, so a stretch of time when the machine is slower
    falls on all of them alike instead of on whichever was being measured then.
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        from engine.audio import AudioSource
        from engine.pipeline import Converter

        self.spec = spec
        self.base_mb = rss_mb()
        t0 = time.perf_counter()
        cfg, runners, self.voice = load_setup(spec)
        self.load_s = time.perf_counter() - t0
        self.loaded_mb = rss_mb()
        self.cfg, self.runners = cfg, runners
        self.conv = Converter(cfg, runners)
        self.audio, self.f0 = fixed_chunk(cfg, spec["input"], spec["chunk_seconds"])
        self.timed = {c: TimedRunner(getattr(runners, c)) for c in COMPONENTS}
        self.chunk: list[float] = []
        self.f0_times: list[float] = []
        self.with_f0: list[float] = []
        self.without_f0: list[float] = []
        self.kernel: dict[str, list[float]] = {"minor_faults": [], "system_seconds": []}  # per conversion with F0
        self.duration = 0.0  # the input's length in seconds, known after the first conversion
        self.output = Path(spec["output"])
        self.scratch = self.output.with_name(f"{self.output.stem}.scratch{self.output.suffix}")
        with AudioSource(spec["input"], cfg.audio.sample_rate, cfg.inference.max_input_seconds) as src:
            t0 = time.perf_counter()
            analysis = self.conv.analyse(src, cfg.inference.f0_method)
            self.analysis_s = time.perf_counter() - t0
        self.fast = known_analysis_converter(self.conv, analysis)
        # Warm-up, untimed: the chunk and both whole-file paths (first-call allocations, shape plans).
        for _ in range(spec["warmup"]):
            run_span(self.conv, self.audio, self.f0, self.voice)
        self._convert(self.conv, self.scratch)
        self._convert(self.fast, self.scratch)

    def _convert(self, conv: Any, output: Path, record_kernel: bool = False) -> float:
        """One whole-file conversion; its seconds. With ``record_kernel``, also appends what the kernel did
        for it to :attr:`kernel`: minor page faults and system CPU seconds (a process that hands memory back
        and faults it in again shows here, not in its own code's profile)."""
        from engine.pipeline import ConvertOptions

        before = resource.getrusage(resource.RUSAGE_SELF)
        res = conv.convert_file(self.spec["input"], output, self.voice, ConvertOptions())
        after = resource.getrusage(resource.RUSAGE_SELF)
        if record_kernel:
            self.kernel["minor_faults"].append(after.ru_minflt - before.ru_minflt)
            self.kernel["system_seconds"].append(round(after.ru_stime - before.ru_stime, 6))
        self.duration = res.input_seconds
        return res.seconds

    def round(self, chunk_runs: int) -> None:
        from engine.f0 import extract_f0

        a = self.cfg.audio
        with _Swapped(self.conv, self.timed):
            for _ in range(chunk_runs):
                t0 = time.perf_counter()
                run_span(self.conv, self.audio, self.f0, self.voice)
                self.chunk.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                extract_f0(self.audio, a.sample_rate, a.hop_length, self.cfg.inference.f0_method, a.f0_min, a.f0_max)
                self.f0_times.append(time.perf_counter() - t0)
        # The output kept for the quality comparison is the first timed conversion's.
        self.with_f0.append(self._convert(self.conv, self.output if not self.with_f0 else self.scratch,
                                          record_kernel=True))
        self.without_f0.append(self._convert(self.fast, self.scratch))

    def result(self) -> dict[str, Any]:
        self.scratch.unlink(missing_ok=True)
        duration = self.duration
        e2e = {"input_seconds": round(duration, 3), "seconds": [round(s, 6) for s in self.with_f0],
               "seconds_no_f0": [round(s, 6) for s in self.without_f0],
               "analysis_seconds": round(self.analysis_s, 6),
               "rtf": round(statistics.median(self.with_f0) / duration, 5),
               "rtf_no_f0": round(statistics.median(self.without_f0) / duration, 5),
               **self.kernel,
               "median_minor_faults": statistics.median(self.kernel["minor_faults"]),
               "median_system_ms": round(1000 * statistics.median(self.kernel["system_seconds"]), 2)}
        spec = self.spec
        return {"backend": spec["backend"], "precision": spec["precision"], "device": spec["device"],
                "component_precisions": self.runners.describe(), "trained": self.runners.trained,
                "threads": self.cfg.runtime.threads,
                "chunk_seconds": round(self.audio.shape[0] / self.cfg.audio.sample_rate, 3),
                "components": {c: {**summary_ms(t.times), "precision": t.precision, "backend": t.backend}
                               for c, t in self.timed.items()},
                "chunk": summary_ms(self.chunk), "f0_extraction": summary_ms(self.f0_times),
                "rtf": e2e["rtf"], "rtf_no_f0": e2e["rtf_no_f0"], "end_to_end": e2e,
                "load_seconds": round(self.load_s, 3), "rss_start_mb": round(self.base_mb, 1),
                "rss_loaded_mb": round(self.loaded_mb, 1), "peak_mb": round(peak_rss_mb(), 1),
                "gpu_peak_mb": cuda_peak_mb(spec["device"]), "output": spec["output"]}


def round_sizes(repeats: int, rounds: int) -> list[int]:
    """Chunk runs per round: ``repeats`` spread as evenly as possible over ``rounds``."""
    return [repeats // rounds + (1 if i < repeats % rounds else 0) for i in range(rounds)]


def cuda_peak_mb(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None


def measure_scale(spec: dict[str, Any]) -> dict[str, Any]:
    from engine.pipeline import Converter, ConvertOptions

    cfg, runners, voice = load_setup(spec)
    conv = Converter(cfg, runners)
    audio, f0 = fixed_chunk(cfg, spec["input"], spec["chunk_seconds"])
    run_span(conv, audio, f0, voice)  # warm-up: first-call allocations are not part of the length's cost
    loaded_mb = rss_mb()
    res = conv.convert_file(spec["input"], spec["output"], voice, ConvertOptions())
    Path(spec["output"]).unlink(missing_ok=True)
    return {"backend": spec["backend"], "precision": spec["precision"], "device": spec["device"],
            "input_seconds": round(res.input_seconds, 3), "wall_seconds": round(res.seconds, 3),
            "rtf": round(res.rtf, 5), "chunks": res.chunks, "rss_loaded_mb": round(loaded_mb, 1),
            "peak_mb": round(peak_rss_mb(), 1)}


def measure_hardware(spec: dict[str, Any]) -> dict[str, Any]:
    """Matmul peak, then FLOPs per component on the fixed chunk (PyTorch's FlopCounterMode on the
    torch components: it counts matmuls and convolutions, which is where the arithmetic is)."""
    from torch.utils.flop_counter import FlopCounterMode

    from benchmarks.machine import matmul_peak
    from engine.pipeline import Converter

    peak = matmul_peak(spec["threads"], size=spec.get("matmul_size", 2048),
                       seconds=spec.get("matmul_seconds", 2.0), trials=spec.get("matmul_trials", 3))
    cfg, runners, voice = load_setup(spec)
    conv = Converter(cfg, runners)
    audio, f0 = fixed_chunk(cfg, spec["input"], spec["chunk_seconds"])
    inputs = component_inputs(conv, audio, f0, voice)
    seconds = audio.shape[0] / cfg.audio.sample_rate
    flops = {}
    for c in COMPONENTS:
        with FlopCounterMode(display=False) as counter:
            getattr(runners, c)(**inputs[c])
        total = int(counter.get_total_flops())
        flops[c] = {"flops_chunk": total, "gflops_per_audio_second": round(total / seconds / 1e9, 4)}
    return {"matmul_peak": peak, "flops": {"chunk_seconds": round(seconds, 3), "components": flops,
                                           "counter": "torch.utils.flop_counter.FlopCounterMode (matmul/conv; "
                                                      "a multiply-add counts 2)"}}


MODES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {"scale": measure_scale, "hardware": measure_hardware}


READY, DONE = "@@ready", "@@done"  # the round protocol's answers, each on its own stdout line


def serve_rounds(spec: dict[str, Any], commands: Any, answer: Callable[[str], None]) -> dict[str, Any]:
    """Mode ``backend``: load and warm up, answer :data:`READY`, then run ``round N`` commands (answering
    :data:`DONE` after each) until ``finish``; the result of every round together."""
    m = BackendMeasurement(spec)
    answer(READY)
    for line in commands:
        words = line.split()
        if words[:1] == ["round"] and len(words) == 2:
            m.round(int(words[1]))
            answer(DONE)
        elif words == ["finish"]:
            return m.result()
        else:
            raise ValueError(f"unknown command {line.strip()!r}")
    raise EOFError("the harness closed the command pipe before 'finish'")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m benchmarks.child SPEC.json OUT.json", file=sys.stderr)
        return 2
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from engine.errors import AutoVoiceError

    spec = json.loads(Path(args[0]).read_text())
    try:
        if spec["mode"] == "backend":
            result = serve_rounds(spec, sys.stdin, lambda word: print(word, flush=True))
        else:
            result = MODES[spec["mode"]](spec)
    except AutoVoiceError as exc:  # the user's to fix (a stale checkpoint, a missing artifact): one line
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = Path(args[1])
    tmp = out.with_name(out.name + ".partial")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
