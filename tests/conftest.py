"""Shared fixtures: an untrained checkpoint, synthetic sung clips, a fixed voice profile, and CLI helpers.

Nothing here writes to ``os.environ`` for the whole session: in-process tests get configs built from
explicit environments, and subprocesses get their environment from :func:`cli_env`. Engine and torch
imports happen inside the fixtures, so collecting tests that never use them (the studio's) stays light.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from audio_support import CliRun, SungAudio, SungClip, channel_gains, sung_audio

if TYPE_CHECKING:
    from engine.config import Config
    from engine.pipeline import Converter
    from engine.runners import Runners
    from engine.voices import VoiceProfile

MODEL_SEED = 1234
VOICE_NAME = "testvoice"
VOICE_MEDIAN_F0 = 330.0
@pytest.fixture(scope="session")
def sung() -> SungAudio:
    """:func:`sung_audio`, for tests that want samples rather than a file."""
    return sung_audio


@pytest.fixture(scope="session")
def sung_clip(tmp_path_factory: pytest.TempPathFactory) -> SungClip:
    """Factory: write a sung clip and return its path.

    ``sung_clip(seconds=2.0, sr=16000, channels=1, fmt="WAV", subtype="PCM_16", f0=220.0, seed=0,
    level=0.5, path=None)``; channels carry the melody with :func:`channel_gains`.
    """
    root = tmp_path_factory.mktemp("clips")
    made: dict[tuple[Any, ...], Path] = {}

    def make(seconds: float = 2.0, sr: int = 16000, channels: int = 1, fmt: str = "WAV",
             subtype: str | None = "PCM_16", f0: float = 220.0, seed: int = 0, level: float = 0.5,
             path: str | Path | None = None) -> Path:
        import soundfile as sf

        key = (seconds, sr, channels, fmt, subtype, f0, seed, level)
        if path is None and key in made:
            return made[key]
        x = sung_audio(seconds, sr, f0=f0, seed=seed, level=level)
        data = x[:, None] * channel_gains(channels)[None, :] if channels > 1 else x
        ext = {"WAV": "wav", "FLAC": "flac", "OGG": "ogg", "AIFF": "aiff"}.get(fmt, fmt.lower())
        out = Path(path) if path is not None else root / f"sung_{len(made)}_{sr}_{channels}ch.{ext}"
        sf.write(str(out), data, sr, format=fmt, subtype=subtype)
        if path is None:
            made[key] = out
        return out

    return make


BAD_INPUTS = {  # kind -> what the one-line error must say
    "not_audio": "not a readable audio file",
    "empty": "file is empty",
    "truncated_wav": "truncated",
    "truncated_flac": "corrupt or truncated",
    "missing": "not found",
    "silent": "silent",
    "nan": "NaN or infinite",
    "inf": "NaN or infinite",
    "too_long": "longer than the limit of 20 minutes",
}


def truncated_copy(path: Path, keep_fraction: float = 0.5) -> Path:
    """The first part of a file (its header still announces the full length), beside it."""
    data = path.read_bytes()
    out = path.with_name(f"truncated_{path.name}")
    out.write_bytes(data[: int(len(data) * keep_fraction)])
    return out


def write_long_wav(path: Path, minutes: float, sr: int = 8000) -> Path:
    """A real int16 WAV of ``minutes`` of tone, written block by block (21 minutes at 8 kHz is 20 MB)."""
    import soundfile as sf

    block = (0.1 * np.sin(2 * np.pi * 220 * np.arange(sr) / sr)).astype(np.float32)
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=1, subtype="PCM_16") as fh:
        for _ in range(int(round(minutes * 60))):
            fh.write(block)
    return path


@pytest.fixture(scope="session")
def bad_input() -> Callable[[str, Path], tuple[Path, str]]:
    """Factory: ``bad_input(kind, folder)`` writes one of :data:`BAD_INPUTS` into ``folder`` and returns its
    path and what the refusal must say."""
    import soundfile as sf

    def make(kind: str, folder: Path) -> tuple[Path, str]:
        if kind not in BAD_INPUTS:
            raise ValueError(f"unknown bad input {kind!r}")
        return write(kind, folder), BAD_INPUTS[kind]

    def write(kind: str, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{kind}.wav"
        sr = 16000
        if kind == "not_audio":
            path.write_text("la la la: lyrics, not audio\n" * 40)
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "truncated_wav":
            sf.write(str(path), sung_audio(2.0, sr), sr, subtype="PCM_16")
            return truncated_copy(path)
        elif kind == "truncated_flac":
            path = path.with_suffix(".flac")
            sf.write(str(path), sung_audio(2.0, sr), sr, format="FLAC")
            return truncated_copy(path, 0.6)
        elif kind == "missing":
            pass
        elif kind == "silent":
            sf.write(str(path), np.zeros(2 * sr, np.float32), sr, subtype="PCM_16")
        elif kind in ("nan", "inf"):
            x = sung_audio(2.0, sr).astype(np.float32)
            x[int(1.3 * sr)] = np.nan if kind == "nan" else -np.inf
            sf.write(str(path), x, sr, subtype="FLOAT")
        elif kind == "too_long":
            write_long_wav(path, 21.0)
        return path

    return make


@pytest.fixture(scope="session")
def base_cfg() -> Config:
    """The default configuration, ignoring the caller's environment."""
    from engine.config import load_config

    return load_config(environ={})


@pytest.fixture(scope="session")
def untrained_checkpoint(tmp_path_factory: pytest.TempPathFactory, base_cfg: Config) -> Path:
    """An UNTRAINED checkpoint of the default-sized model, the same weights on every run."""
    import torch

    from engine.checkpoint import save_checkpoint
    from engine.models.svc import SVCModel

    with torch.random.fork_rng():
        torch.manual_seed(MODEL_SEED)
        model = SVCModel(base_cfg.model, base_cfg.audio)
    return save_checkpoint(model, tmp_path_factory.mktemp("checkpoint") / "untrained.pt", trained=False)


@pytest.fixture(scope="session")
def engine_env(untrained_checkpoint: Path) -> dict[str, str]:
    """The AutoVoice variables every test environment gets (a config built from them finds the checkpoint)."""
    return {"AUTOVOICE__PATHS__CHECKPOINT": str(untrained_checkpoint)}


@pytest.fixture(scope="session")
def make_cfg(engine_env: dict[str, str]) -> Callable[..., Config]:
    """Factory: ``make_cfg(AUTOVOICE__INFERENCE__CHUNK_SECONDS="4", ...)`` -> a config over :func:`engine_env`."""

    from engine.config import load_config

    def make(**overrides: str) -> Config:
        return load_config(environ={**engine_env, **overrides})

    return make


@pytest.fixture(scope="session")
def engine_cfg(make_cfg: Callable[..., Config]) -> Config:
    return make_cfg()


@pytest.fixture(scope="session")
def runners(engine_cfg: Config) -> Runners:
    """The untrained model's five components on the torch backend, loaded once.

    Loading sets torch's thread count from the config; the previous count is put back, so tests that do
    not ask for :func:`one_torch_thread` keep torch's default.
    """
    import torch

    from engine.runners import load_runners

    threads = torch.get_num_threads()
    try:
        return load_runners(engine_cfg, "torch")
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Run a module's in-process model code on one thread (2-core CI runners are shared: extra threads
    spin against the subprocesses and cost far more than they gain), restoring the count afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def make_converter(make_cfg: Callable[..., Config], runners: Runners) -> Callable[..., Converter]:
    """Factory: a :class:`Converter` over the shared runners with config overrides (env-variable style)."""
    from engine.pipeline import Converter


    def make(**overrides: str) -> Converter:
        return Converter(make_cfg(**overrides), runners)

    return make


@pytest.fixture(scope="session")
def voice_profile() -> VoiceProfile:
    """A target voice from a fixed embedding (no Resemblyzer), singing around 330 Hz."""
    from engine.voices import VoiceProfile

    emb = np.random.default_rng(7).standard_normal(256).astype(np.float32)
    return VoiceProfile(name=VOICE_NAME, embedding=emb / np.linalg.norm(emb), median_f0=VOICE_MEDIAN_F0,
                        n_clips=1, seconds=3.0, source="user")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory, voice_profile: VoiceProfile) -> Path:
    """An ``AUTOVOICE_DATA_DIR`` holding :func:`voice_profile` as the stored voice ``testvoice``."""
    from engine.voices import VoiceStore

    root = tmp_path_factory.mktemp("data")
    VoiceStore(root / "voices").save(voice_profile, clips=[])
    return root


@pytest.fixture(scope="session")
def cli_env(engine_env: dict[str, str], data_dir: Path) -> dict[str, str]:
    """Environment for ``autovoice`` subprocesses: the caller's, minus its AutoVoice settings, plus ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOVOICE")}
    env.update(engine_env)
    env.update({"AUTOVOICE_DATA_DIR": str(data_dir), "AUTOVOICE__RUNTIME__THREADS": "1",
                "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"})
    return env



@pytest.fixture(scope="session")
def run_cli(cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    """Run ``python -m autovoice ARGS`` in a subprocess; ``env`` entries are added to :func:`cli_env`."""
    cwd = tmp_path_factory.mktemp("cli_cwd")

    def run(args: Sequence[str | Path], env: dict[str, str] | None = None,
            timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "autovoice", *map(str, args)], cwd=cwd,
                              env={**cli_env, **(env or {})}, capture_output=True, text=True, timeout=timeout)

    return run
