"""``autovoice convert`` in real subprocesses: every bad input, valid edge cases, and a 10 s sung clip.

Each run imports torch and loads the model (seconds of CPU), so the module's runs are declared up front
and executed concurrently, once, by :func:`runs`; each test then checks the run it is about.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SungClip = Callable[..., Path]
BadInput = Callable[[str, Path], tuple[Path, str]]
CliRun = Callable[..., subprocess.CompletedProcess[str]]

BAD_KINDS = ("not_audio", "empty", "truncated_wav", "truncated_flac", "missing", "silent", "nan", "inf",
             "too_long")
ERROR_PREFIX = "autovoice: error:"


@dataclass
class Run:
    args: list[str]
    output: Path
    input: Path | None = None
    says: str = ""  # for a bad input: what the error line must contain
    proc: subprocess.CompletedProcess[str] | None = None

    @property
    def done(self) -> subprocess.CompletedProcess[str]:
        assert self.proc is not None
        return self.proc


def _convert(inp: Path, out: Path, *extra: str) -> list[str]:
    return ["convert", str(inp), "-o", str(out), "--voice", "testvoice", "--backend", "torch", *extra]


@pytest.fixture(scope="module")
def runs(run_cli: CliRun, sung_clip: SungClip, bad_input: BadInput,
         tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    root = tmp_path_factory.mktemp("cli_runs")
    plan: dict[str, Run] = {}

    def add(name: str, inp: Path, extra: tuple[str, ...] = (), out_name: str = "out.wav", says: str = "") -> None:
        out_dir = root / name
        out_dir.mkdir()
        plan[name] = Run(_convert(inp, out_dir / out_name, *extra), out_dir / out_name, inp, says)

    for kind in BAD_KINDS:
        path, says = bad_input(kind, root / "inputs" / kind)
        add(f"bad_{kind}", path, says=says)
    add("sung_10s", sung_clip(seconds=10.0, sr=44100, channels=2, f0=196.0, seed=10))
    add("rate_8k", sung_clip(seconds=1.5, sr=8000, seed=11), ("--transpose", "auto"))
    add("rate_192k", sung_clip(seconds=1.2, sr=192000, seed=12))
    add("channels_8", sung_clip(seconds=1.5, sr=44100, channels=8, seed=13))
    add("format_rate", sung_clip(seconds=1.3, sr=22050, seed=14), ("--format", "ogg", "--sample-rate", "48000"),
        out_name="out.sound")
    for name in ("seed_a", "seed_b"):
        add(name, sung_clip(seconds=1.0, seed=15), ("--seed", "3", "--temperature", "0.7"))

    workers = max(2, min(4, os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(run_cli, r.args) for name, r in plan.items()}
    for name, future in futures.items():
        plan[name].proc = future.result()
    return plan


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(ERROR_PREFIX)]


@pytest.mark.parametrize("name", [f"bad_{k}" for k in BAD_KINDS])
def test_bad_input_one_clear_line_and_nothing_written(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    proc = run.done
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    errors = _error_lines(proc.stderr)
    assert len(errors) == 1, proc.stderr
    assert run.says in errors[0], errors[0]
    assert proc.stderr.rstrip().splitlines()[-1] == errors[0]  # the last thing said is the reason
    assert "wrote" not in proc.stdout
    assert list(run.output.parent.iterdir()) == []  # no output, no partial temp file


def _assert_valid_run(run: Run) -> np.ndarray:
    proc = run.done
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not _error_lines(proc.stderr)
    assert "UNTRAINED" in proc.stderr  # an untrained checkpoint never passes for a trained one
    assert "wrote" in proc.stdout
    assert [p.name for p in run.output.parent.iterdir()] == [run.output.name]
    y, _ = sf.read(str(run.output), dtype="float32")
    assert y.ndim == 1
    assert np.all(np.isfinite(y))
    assert float(np.sqrt(np.mean(y.astype(np.float64) ** 2))) > 1e-3, "silent output"
    assert float(np.max(np.abs(y))) < 1.0, "clipping output"
    return y


def test_ten_second_sung_clip(runs: dict[str, Run]) -> None:
    run = runs["sung_10s"]
    assert run.input is not None
    y = _assert_valid_run(run)
    info_in, info_out = sf.info(str(run.input)), sf.info(str(run.output))
    assert info_out.samplerate == info_in.samplerate == 44100
    assert info_out.frames == info_in.frames == 441000
    x, _ = sf.read(str(run.input), dtype="float64")
    level_in = 20 * np.log10(np.sqrt(np.mean(x.mean(axis=1) ** 2)))
    level_out = 20 * np.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
    assert abs(level_out - level_in) < 3.0, (level_in, level_out)  # loudness restored


@pytest.mark.parametrize("name", ["rate_8k", "rate_192k", "channels_8"])
def test_valid_edge_inputs_convert(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    assert run.input is not None
    _assert_valid_run(run)
    info_in, info_out = sf.info(str(run.input)), sf.info(str(run.output))
    assert (info_out.samplerate, info_out.frames, info_out.channels) == (info_in.samplerate, info_in.frames, 1)


def test_transpose_auto_is_reported(runs: dict[str, Run]) -> None:
    out = runs["rate_8k"].done.stdout
    line = next(line for line in out.splitlines() if line.startswith("transpose:"))
    assert line.endswith("semitones (auto)")
    assert int(line.split()[1]) > 0  # the clip sits below the voice's 330 Hz


def test_format_and_sample_rate_flags(runs: dict[str, Run]) -> None:
    run = runs["format_rate"]
    assert run.input is not None
    _assert_valid_run(run)
    info = sf.info(str(run.output))
    assert info.format == "OGG" and info.samplerate == 48000
    assert info.frames == round(sf.info(str(run.input)).frames * 48000 / 22050)


def test_same_seed_same_file(runs: dict[str, Run]) -> None:
    _assert_valid_run(runs["seed_a"])
    assert runs["seed_a"].output.read_bytes() == runs["seed_b"].output.read_bytes()


def test_convert_help_lists_the_flags(run_cli: CliRun) -> None:
    proc = run_cli(["convert", "--help"], timeout=60)
    assert proc.returncode == 0 and "--voice" in proc.stdout and "--sample-rate" in proc.stdout


def test_sigterm_mid_conversion_leaves_no_partial_output(cli_env: dict[str, str], sung_clip: SungClip,
                                                         tmp_path: Path) -> None:
    import signal
    import sys
    import time

    clip = sung_clip(seconds=240.0, path=tmp_path / "long.wav")
    out_dir = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "autovoice", *_convert(clip, out_dir / "out.wav")],
                            env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(out_dir.glob(".out.wav.*.partial")):  # the writer is open: conversion is under way
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert err.rstrip().endswith("autovoice: terminated") and "Traceback" not in err
    assert list(out_dir.iterdir()) == []
