"""``autovoice bench``: every available backend/precision measured side by side, each in its own process.

Order of a run: resolve the voice once (its embedding is handed to every measurement, so no process loads
the speaker encoder); build missing artifacts; measure the matmul peak and the FLOPs; measure every target,
each in its own process (:mod:`benchmarks.child`), in interleaved rounds (:mod:`benchmarks.interleave`);
compare every output with the PyTorch FP32 one; convert
10/60/600 s inputs for the scaling table; run the worker pool; write JSON, markdown and PNG.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.artifacts import REFERENCE, Artifacts, Target, parse_targets, unavailable_reason
from benchmarks.interleave import ChildFailed, failure_reason, measure_interleaved
from benchmarks.machine import cores, describe, load_average

log = logging.getLogger(__name__)
LogFn = Callable[[str], None]


@dataclass
class BenchSettings:
    input: Path
    voice: str
    json_out: Path
    markdown: Path | None = None          # default: the JSON's path with .md
    plot: Path | None = None              # default: the JSON's path with .png
    targets: list[str] | None = None      # default: all
    repeats: int = 5
    warmup: int = 1
    e2e_repeats: int = 3
    threads: int = 0                      # 0: every core this process may use
    chunk_seconds: float | None = None    # default: inference.chunk_seconds
    engine_dir: Path | None = None        # default: <data dir>/bench/engines
    checkpoint: Path | None = None
    calibration: Path | None = None
    calibration_dir: Path | None = None
    scaling_seconds: list[float] = field(default_factory=lambda: [10.0, 60.0, 600.0])
    scaling_targets: list[str] = field(default_factory=lambda: ["onnxruntime/fp32"])
    pool_workers: list[int] = field(default_factory=lambda: [1, 2])
    pool_jobs: int = 8
    pool_target: str = "onnxruntime/fp32"
    hardware: bool = True
    matmul_seconds: float = 2.0           # per trial of the matmul peak
    child_timeout: float = 7200.0
    command: str = ""


def run_child(spec: dict[str, Any], env: dict[str, str], work: Path, timeout: float) -> dict[str, Any]:
    """Run one :mod:`benchmarks.child` measurement; its JSON result, or :class:`ChildFailed` with the tail of
    its output."""
    name = f"{spec['mode']}_{spec.get('backend', 'hw')}_{spec.get('precision', '')}_{len(list(work.iterdir()))}"
    spec_path, out_path, log_path = work / f"{name}.spec.json", work / f"{name}.json", work / f"{name}.log"
    spec_path.write_text(json.dumps(spec))
    with open(log_path, "wb") as fh:
        try:
            proc = subprocess.run([sys.executable, "-m", "benchmarks.child", str(spec_path), str(out_path)],
                                  env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, cwd=work)
        except subprocess.TimeoutExpired:
            raise ChildFailed(f"timed out after {timeout:.0f} s") from None
    if proc.returncode != 0 or not out_path.is_file():
        raise ChildFailed(failure_reason(log_path, proc.returncode))
    return json.loads(out_path.read_text())


def tile_input(src: Path, seconds: float, dst: Path, sr: int, max_seconds: float) -> Path:
    """``dst``: the input at the model's rate, repeated (written block by block) to ``seconds`` long."""
    import soundfile as sf

    from engine.audio import load_clip

    clip = load_clip(src, sr, max_seconds).astype(np.float32)
    total = int(round(seconds * sr))
    with sf.SoundFile(str(dst), "w", samplerate=sr, channels=1, subtype="PCM_16") as fh:
        written = 0
        while written < total:
            block = clip[: total - written]
            fh.write(block)
            written += block.shape[0]
    return dst


def child_env(base: dict[str, str], target: Target) -> dict[str, str]:
    env = dict(base)
    env["AUTOVOICE__RUNTIME__DEVICE"] = target.device
    if target.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU measurement must not initialise (or count) a GPU
    return env


def derive(results: list[dict[str, Any]], hardware: dict[str, Any] | None, peak_gflops: float | None) -> None:
    """Speedups against the reference, and each component's achieved FLOP/s against the matmul peak."""
    ref = next((r for r in results if r["label"] == REFERENCE.label), None)
    flops = ((hardware or {}).get("flops") or {}).get("components") or {}
    for r in results:
        if ref is not None:
            r["speedup"] = round(ref["rtf"] / r["rtf"], 3)
            r["speedup_no_f0"] = round(ref["rtf_no_f0"] / r["rtf_no_f0"], 3)
            r["speedup_chunk"] = round(ref["chunk"]["median_ms"] / r["chunk"]["median_ms"], 3)
        achieved = {}
        for c, f in flops.items():
            seconds = r["components"][c]["median_ms"] / 1000.0
            rate = f["flops_chunk"] / seconds / 1e9 if seconds > 0 else None
            achieved[c] = {"gflops_per_second": round(rate, 2) if rate is not None else None,
                           "percent_of_peak": round(100.0 * rate / peak_gflops, 1) if rate and peak_gflops else None}
        r["achieved"] = achieved
        comps = r["components"]
        r["dominant_component"] = max(comps, key=lambda c: comps[c]["median_ms"])


class Bench:
    def __init__(self, settings: BenchSettings, say: LogFn | None = None) -> None:
        from engine.config import load_config

        # The measurements run in a scratch folder: every path they are given must be absolute.
        self.s = dataclasses.replace(settings, input=Path(settings.input).resolve())
        self.say = say or (lambda line: log.info("%s", line))
        overrides = {}
        if settings.checkpoint is not None:
            overrides["AUTOVOICE__PATHS__CHECKPOINT"] = str(Path(settings.checkpoint).resolve())
        self.cfg = load_config(environ={**os.environ, **overrides})
        self.threads = settings.threads or self.cfg.runtime.threads or cores()
        overrides["AUTOVOICE__RUNTIME__THREADS"] = str(self.threads)
        self.engine_dir = Path(settings.engine_dir or self.cfg.data_dir / "bench" / "engines").resolve()
        overrides["AUTOVOICE__TENSORRT__VOICE_CONVERSION__ENGINE_DIR"] = str(self.engine_dir)
        self.cfg = load_config(environ={**os.environ, **overrides})
        self.env = {**os.environ, **overrides, "OMP_NUM_THREADS": str(self.threads),
                    "MKL_NUM_THREADS": str(self.threads)}
        self.chunk_seconds = settings.chunk_seconds or self.cfg.inference.chunk_seconds

    def spec(self, mode: str, target: Target, work: Path, **extra: Any) -> dict[str, Any]:
        return {"mode": mode, "backend": target.backend, "precision": target.precision, "device": target.device,
                "engine_dir": str(self.engine_dir), "input": str(self.s.input), "chunk_seconds": self.chunk_seconds,
                "voice_embedding": str(work / "voice.npy"), "voice_median_f0": self.voice.median_f0,
                "threads": self.threads, "repeats": self.s.repeats, "warmup": self.s.warmup,
                "e2e_repeats": self.s.e2e_repeats, **extra}

    def run(self) -> dict[str, Any]:
        from engine.audio import probe
        from engine.checkpoint import read_payload
        from engine.voices import default_store, resolve_voice

        s = self.s
        info = probe(s.input, self.cfg.inference.max_input_seconds)  # refuse bad input before anything else
        machine = describe(self.threads)
        self.say(f"machine: {machine['cpu']}, {self.threads} thread(s), load average {machine['load_average_start']}")
        self.voice = resolve_voice(s.voice, default_store(self.cfg))
        trained = bool(read_payload(self.cfg.checkpoint_path).get("trained"))
        self.engine_dir.mkdir(parents=True, exist_ok=True)
        targets = parse_targets(s.targets)
        data: dict[str, Any] = {
            "command": s.command, "machine": machine,
            "input": {"path": str(s.input), "name": Path(s.input).name, "seconds": round(info.duration, 3),
                      "sample_rate": info.sample_rate},
            "checkpoint": {"path": str(self.cfg.checkpoint_path), "trained": trained},
            "settings": {"repeats": s.repeats, "warmup": s.warmup, "e2e_repeats": s.e2e_repeats,
                         "threads": self.threads, "chunk_seconds": self.chunk_seconds,
                         "f0_method": self.cfg.inference.f0_method, "engine_dir": str(self.engine_dir),
                         "torch_inference_mode": True, "ort_spinning": False},
            "results": [], "skipped": [], "artifacts": {}}
        with tempfile.TemporaryDirectory(prefix="autovoice-bench-") as tmp:
            work = Path(tmp)
            np.save(work / "voice.npy", np.asarray(self.voice.embedding, dtype=np.float32))
            artifacts = Artifacts(self.cfg, self.engine_dir, self.voice, Path(s.input), calibration=s.calibration,
                                  calibration_dir=s.calibration_dir, say=self.say)
            runnable = self._prepare(targets, artifacts, data["skipped"])
            data["artifacts"] = {"built": artifacts.built, "calibration": artifacts.calibration_info}
            data["hardware"] = self._hardware(work) if s.hardware else None
            machine["matmul_peak"] = (data["hardware"] or {}).get("matmul_peak")
            self._measure(runnable, work, data)
            if not data["results"]:
                from engine.errors import AutoVoiceError

                raise AutoVoiceError("no backend could be measured: " + "; ".join(
                    f"{k['label']}: {k['reason']}" for k in data["skipped"]))
            self._quality(data["results"])
            derive(data["results"], data["hardware"], (machine.get("matmul_peak") or {}).get("gflops"))
            data["scaling"] = self._scaling(runnable, work)
            data["pool"] = self._pool(runnable)
        for r in data["results"]:
            r.pop("output", None)
        machine["load_average_end"] = load_average()
        self.write(data)
        return data

    def _measure(self, runnable: list[Target], work: Path, data: dict[str, Any]) -> None:
        """Every runnable target in its own process, their rounds interleaved (:mod:`benchmarks.interleave`)."""
        s = self.s
        rounds = max(s.e2e_repeats, 1)
        self.say(f"measuring {', '.join(t.label for t in runnable)}: {rounds} interleaved round(s), "
                 f"{s.repeats} chunk runs and {s.e2e_repeats} whole-file runs each")
        children = {t.label: (self.spec("backend", t, work, output=str(work / f"out_{i}.wav")),
                              child_env(self.env, t)) for i, t in enumerate(runnable)}
        load_before = load_average()[:1]
        results, failed = measure_interleaved(children, work, s.repeats, rounds, s.child_timeout, self.say)
        load_after = load_average()[:1]
        for t in runnable:
            if t.label in failed:
                data["skipped"].append({"label": t.label, "reason": f"measurement failed: {failed[t.label]}"})
                continue
            r = results[t.label]
            r["label"] = t.label
            # 1-minute load around the measurement; the measurement itself adds about its thread count.
            r["load_average"] = load_before + load_after
            data["results"].append(r)
            self.say(f"{t.label}: RTF {r['rtf']:.3f} ({r['rtf_no_f0']:.3f} without F0), chunk "
                     f"{r['chunk']['median_ms']:.0f} ms, peak {r['peak_mb']:.0f} MB")

    def _prepare(self, targets: list[Target], artifacts: Artifacts, skipped: list[dict[str, str]]) -> list[Target]:
        from engine.errors import AutoVoiceError

        runnable = []
        for t in targets:
            reason = unavailable_reason(t)
            if reason is None:
                try:
                    artifacts.ensure(t)
                except AutoVoiceError as exc:
                    reason = f"could not build its artifacts: {exc}"
            if reason is not None:
                skipped.append({"label": t.label, "reason": reason})
                self.say(f"{t.label}: skipped: {reason}")
                continue
            runnable.append(t)
        return runnable

    def _hardware(self, work: Path) -> dict[str, Any] | None:
        self.say("matmul peak and FLOPs per component")
        try:
            return run_child(self.spec("hardware", REFERENCE, work, matmul_seconds=self.s.matmul_seconds),
                             child_env(self.env, REFERENCE), work, self.s.child_timeout)
        except ChildFailed as exc:
            self.say(f"hardware measurement FAILED: {exc}")
            return {"error": str(exc)}

    def _quality(self, results: list[dict[str, Any]]) -> None:
        from benchmarks.deltas import Reference

        ref_result = next((r for r in results if r["label"] == REFERENCE.label), None)
        if ref_result is None:
            for r in results:
                r["quality"] = None
            return
        ref = Reference(self.cfg, ref_result["output"])
        for r in results:
            r["quality"] = ref.compare(r["output"])

    def _scaling(self, runnable: list[Target], work: Path) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if not self.s.scaling_seconds:
            return out
        by_label = {t.label: t for t in runnable}
        for label in self.s.scaling_targets:
            target = by_label.get(label)
            if target is None:
                out.append({"label": label, "skipped": "not among the measured targets"})
                continue
            rows = []
            for seconds in self.s.scaling_seconds:
                path = tile_input(Path(self.s.input), seconds, work / f"scale_{seconds:g}s.wav",
                                  self.cfg.audio.sample_rate, self.cfg.inference.max_input_seconds)
                self.say(f"scaling {label}: {seconds:g} s input")
                try:
                    r = run_child(self.spec("scale", target, work, input=str(path),
                                            output=str(work / f"scale_out_{seconds:g}.wav")),
                                  child_env(self.env, target), work, self.s.child_timeout)
                except ChildFailed as exc:
                    r = {"input_seconds": seconds, "error": str(exc)}
                    self.say(f"scaling {label} {seconds:g} s FAILED: {exc}")
                finally:
                    path.unlink(missing_ok=True)
                if "error" not in r:
                    self.say(f"scaling {label}: {seconds:g} s: RTF {r['rtf']:.3f}, peak {r['peak_mb']:.0f} MB")
                rows.append(r)
            ok = [r for r in rows if "error" not in r]
            rtfs = [r["rtf"] for r in ok]
            out.append({"label": label, "rows": ok, "failed": [r for r in rows if "error" in r],
                        "rtf_spread": round(max(rtfs) / min(rtfs), 3) if rtfs else None,
                        "rtf_median": round(statistics.median(rtfs), 4) if rtfs else None,
                        "peak_growth_mb": round(ok[-1]["peak_mb"] - ok[0]["peak_mb"], 1) if len(ok) > 1 else None})
        return out

    def _pool(self, runnable: list[Target]) -> dict[str, Any] | None:
        from benchmarks.pool import measure_pool
        from benchmarks.pool import unavailable_reason as pool_unavailable

        if not self.s.pool_workers:
            return None
        target = next((t for t in runnable if t.label == self.s.pool_target), None)
        reason = pool_unavailable() or (None if target else f"{self.s.pool_target} is not among the measured targets")
        if reason is None and target is not None and target.device != "cpu":
            reason = "the pool benchmark runs CPU workers"
        if reason is not None or target is None:
            self.say(f"worker pool: skipped: {reason}")
            return {"skipped": reason}
        try:
            return measure_pool(Path(self.s.input).resolve(), self.voice, self.env, worker_counts=self.s.pool_workers,
                                jobs=self.s.pool_jobs, backend=target.backend, precision=target.precision,
                                say=self.say)
        except Exception as exc:  # noqa: BLE001 - a pool failure must not lose the other figures
            self.say(f"worker pool FAILED: {exc}")
            return {"skipped": f"failed: {exc}"}

    def write(self, data: dict[str, Any]) -> None:
        from benchmarks.report import markdown, plot

        s = self.s
        json_out = Path(s.json_out)
        json_out.parent.mkdir(parents=True, exist_ok=True)
        tmp = json_out.with_name(f".{json_out.name}.partial")
        tmp.write_text(json.dumps(data, indent=1, default=_json_default) + "\n")
        tmp.replace(json_out)
        md = Path(s.markdown or json_out.with_suffix(".md"))
        md.write_text(markdown(data))
        png = plot(data, s.plot or json_out.with_suffix(".png"))
        self.say(f"wrote {json_out}, {md} and {png}")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def run_benchmark(settings: BenchSettings, say: LogFn | None = None) -> dict[str, Any]:
    """Run the whole benchmark and write its JSON, markdown and PNG; returns the JSON's content."""
    return Bench(settings, say).run()

