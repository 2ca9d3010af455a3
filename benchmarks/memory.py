"""Memory benchmark: peak RSS of a conversion must not grow with the length of the input.

For each length it writes a 44.1 kHz stereo sung melody (legato: no silence, so every chunk boundary is
a forced, crossfaded cut), then measures in a fresh process: RSS after loading the five components,
then the peak RSS while converting the file (the high-water mark is reset after loading where Linux
allows it, otherwise ``ru_maxrss``). The growth is peak minus after-load; the ratio is the longest
input's growth over the shortest's.

The measuring processes run with glibc's mmap threshold fixed at 4 MB (``MALLOC_MMAP_THRESHOLD_``, unless
the caller sets it): every tensor of 4 MB or more is then mapped on allocation and returned on free, so
RSS follows the memory in use. With glibc's default adaptive threshold, freed large blocks may stay in
the heap, and one process's peak RSS lands at random ~70 MB higher or lower than another's running the
same conversion: noise that says nothing about the length of the input. The README's figures come from::

    python -m benchmarks.memory --minutes 1 10 --untrained --jobs 2

``--untrained`` measures a freshly initialised model (the weights do not change the memory profile);
without it the configured checkpoint (``paths.checkpoint``, or ``--checkpoint``) is used.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 44100
CHANNELS = 2
BLOCK_SECONDS = 10
SCALE = (0, 2, 4, 5, 7, 9, 11, 12)
FORMANTS = ((700.0, 110.0, 1.0), (1220.0, 120.0, 0.5), (2600.0, 160.0, 0.25))
MMAP_THRESHOLD = 4 << 20  # bytes: see the module docstring


def write_melody(path: Path, seconds: float, sr: int = SAMPLE_RATE, f0: float = 196.0) -> Path:
    """A legato stereo melody written block by block (a 10-minute file never sits in memory whole)."""
    import soundfile as sf

    n_total = int(round(seconds * sr))
    note_seconds = 0.4
    notes = np.random.default_rng(0).integers(len(SCALE), size=int(seconds / note_seconds) + 2)
    phase = 0.0
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=CHANNELS, subtype="PCM_16") as fh:
        for start in range(0, n_total, BLOCK_SECONDS * sr):
            t = (start + np.arange(min(BLOCK_SECONDS * sr, n_total - start))) / sr
            semis = np.take(SCALE, notes[(t / note_seconds).astype(int)])
            f = f0 * 2.0 ** ((semis + 0.3 * np.sin(2 * np.pi * 5.5 * t)) / 12.0)
            ph = phase + 2 * np.pi * np.cumsum(f) / sr
            phase = float(ph[-1] % (2 * np.pi))
            y = np.zeros(t.size)
            for k in range(1, 25):
                fk = k * f
                env = sum(g / (1.0 + ((fk - fc) / bw) ** 2) for fc, bw, g in FORMANTS) + 0.05 / k
                y += np.where(fk < 7000.0, env, 0.0) * np.sin(k * ph)
            y *= 0.25 / 1.6
            fh.write(np.stack([y, 0.8 * y], axis=1))
    return path


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset this process's RSS high-water mark (Linux >= 4.0); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _rss_mb() -> float:
    kb = _status_kb("VmRSS")
    if kb is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return kb / 1024.0


def measure(input_path: Path, backend: str) -> dict[str, Any]:
    """In this (fresh) process: load, note RSS, convert, note the peak."""
    from engine.config import load_config
    from engine.pipeline import Converter
    from engine.runners import load_runners
    from engine.voices import VoiceProfile

    cfg = load_config()
    t0 = time.perf_counter()
    runners = load_runners(cfg, backend)
    embedding = np.random.default_rng(7).standard_normal(256).astype(np.float32)
    voice = VoiceProfile(name="bench", embedding=embedding / np.linalg.norm(embedding), median_f0=330.0)
    converter = Converter(cfg, runners)
    load_seconds = time.perf_counter() - t0
    after_load = _rss_mb()
    reset = _reset_peak()
    with tempfile.TemporaryDirectory() as tmp:
        result = converter.convert_file(input_path, Path(tmp) / "out.wav", voice)
    hwm = _status_kb("VmHWM")
    peak = hwm / 1024.0 if (reset and hwm is not None) else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "input_seconds": result.input_seconds,
        "chunks": result.chunks,
        "rss_after_load_mb": round(after_load, 1),
        "peak_rss_mb": round(peak, 1),
        "growth_mb": round(peak - after_load, 1),
        "peak_source": "VmHWM (reset after load)" if reset and hwm is not None else "ru_maxrss",
        "load_seconds": round(load_seconds, 2),
        "convert_seconds": round(result.seconds, 2),
        "threads": cfg.runtime.threads,
        "components": result.components,
    }


def _measure_in_subprocess(input_path: Path, backend: str, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--measure", str(input_path),
                           "--backend", backend], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"measurement of {input_path.name} failed:\n{proc.stderr[-4000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def run(minutes: list[float], backend: str, env: dict[str, str], jobs: int, workdir: Path) -> dict[str, Any]:
    inputs = [write_melody(workdir / f"input_{m:g}min.wav", m * 60.0) for m in minutes]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(lambda p: _measure_in_subprocess(p, backend, env), inputs))
    for m, r in zip(minutes, results, strict=True):
        r["minutes"] = m
    shortest, longest = min(results, key=lambda r: r["minutes"]), max(results, key=lambda r: r["minutes"])
    ratio = longest["growth_mb"] / max(shortest["growth_mb"], 1e-6)
    return {"sample_rate": SAMPLE_RATE, "channels": CHANNELS, "backend": backend, "runs": results,
            "ratio": round(ratio, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0], help="input lengths")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--checkpoint", default=None, help="checkpoint to load (default: the configured one)")
    parser.add_argument("--untrained", action="store_true", help="measure a freshly initialised model")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in each measuring process")
    parser.add_argument("--jobs", type=int, default=1, help="measuring processes run at once")
    parser.add_argument("--json", default=None, help="also write the result here")
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)  # internal: the child process
    args = parser.parse_args(argv)

    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.backend)))
        return 0
    if len(args.minutes) < 2:
        parser.error("give at least two lengths to compare")
    env = {**os.environ, "AUTOVOICE__RUNTIME__THREADS": str(args.threads), "OMP_NUM_THREADS": str(args.threads)}
    env.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))
    with tempfile.TemporaryDirectory(prefix="autovoice-memory-") as tmp:
        workdir = Path(tmp)
        if args.untrained:
            import torch

            from engine.checkpoint import save_checkpoint
            from engine.config import load_config
            from engine.models.svc import SVCModel

            cfg = load_config()
            torch.manual_seed(0)
            env["AUTOVOICE__PATHS__CHECKPOINT"] = str(
                save_checkpoint(SVCModel(cfg.model, cfg.audio), workdir / "untrained.pt", trained=False))
        elif args.checkpoint:
            env["AUTOVOICE__PATHS__CHECKPOINT"] = str(Path(args.checkpoint).resolve())
        report = run(sorted(args.minutes), args.backend, env, args.jobs, workdir)
    text = json.dumps(report, indent=2)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
