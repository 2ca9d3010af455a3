"""Session fixtures shared by the engine tests (export, ONNX Runtime, calibration, builds, fake TensorRT).

Loaded with ``pytest_plugins = ["engines_fixtures"]`` so each expensive step runs once per session: the
ONNX export (~40 s on two cores), the calibration set, and the ONNX Runtime INT8 build.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    from engine.config import Config
    from engine.voices import VoiceProfile

FAKES = Path(__file__).resolve().parent / "fakes"
CROP_SECONDS = "1.0"  # calibration crops in tests: 1 s (clips are 2 s)
TRT_VERSIONS = ("10.13.0", "11.2.0")


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    noise = float(np.sum((reference.astype(np.float64) - test) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(float(np.sum(reference.astype(np.float64) ** 2)) / noise)


@pytest.fixture(scope="session")
def eng_cfg(make_cfg: Callable[..., Config], tmp_path_factory: pytest.TempPathFactory) -> Config:
    """The test config: untrained checkpoint, a private data dir, one thread, 1 s calibration crops."""
    return make_cfg(AUTOVOICE_DATA_DIR=str(tmp_path_factory.mktemp("engines_data")),
                    AUTOVOICE__RUNTIME__THREADS="1", AUTOVOICE__QUANTIZATION__CROP_SECONDS=CROP_SECONDS)


@pytest.fixture(scope="session")
def ckpt(eng_cfg: Config):  # -> LoadedCheckpoint
    from engine.checkpoint import load_checkpoint

    return load_checkpoint(eng_cfg.checkpoint_path)


@pytest.fixture(scope="session")
def exported(ckpt, eng_cfg: Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All five components exported once (``autovoice export``'s folder layout)."""
    import torch

    from engine.export import export_components

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("onnx")
        export_components(ckpt, out, profile=eng_cfg.tensorrt.profile_seconds)
        return out
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def calib_dir(sung_clip, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two sung clips (2 s each, different singers' ranges), plus files the calibration must reject."""
    folder = tmp_path_factory.mktemp("calib_audio")
    sung_clip(seconds=2.0, f0=196.0, seed=11, path=folder / "alto.wav")
    sung_clip(seconds=2.0, sr=44100, f0=262.0, seed=12, fmt="FLAC", subtype="PCM_16", path=folder / "soprano.flac")
    sung_clip(seconds=0.6, f0=220.0, seed=13, path=folder / "too_short.wav")
    sung_clip(seconds=2.0, sr=8000, f0=220.0, seed=14, path=folder / "phone.wav")
    (folder / "lyrics.txt").write_text("la la la\n")
    return folder


@pytest.fixture(scope="session")
def calibration(eng_cfg: Config, calib_dir: Path, voice_profile: VoiceProfile,
                tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """``(calibration.npz, summary)`` made once from :func:`calib_dir`."""
    from engine.calibration import make_calibration_set

    out = tmp_path_factory.mktemp("calib") / "calibration.npz"
    summary = make_calibration_set(eng_cfg, calib_dir, out, voices=[voice_profile])
    return out, summary


@pytest.fixture(scope="session")
def ort_int8(eng_cfg: Config, exported: Path, calibration: tuple[Path, dict],
             tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, list[str]]:
    """An ONNX Runtime INT8 build: ``(engine_dir, summary, log lines)``."""
    from engine.build import build_engines

    engine_dir = tmp_path_factory.mktemp("engines_int8")
    lines: list[str] = []
    summary = build_engines(eng_cfg, "onnxruntime", "int8", calibration=calibration[0], onnx_dir=exported,
                            engine_dir=engine_dir, log_line=lines.append)
    return engine_dir, summary, lines


def convert_clip(cfg: Config, ckpt, runners: dict, clip: Path, out: Path, voice: VoiceProfile) -> np.ndarray:
    """Convert ``clip`` with ``runners`` (seed 2) and return the output samples."""
    import soundfile as sf

    from engine.pipeline import Converter, ConvertOptions
    from engine.runners import Runners

    Converter(cfg, Runners(**runners, checkpoint=ckpt)).convert_file(clip, out, voice, ConvertOptions(seed=2))
    return sf.read(str(out), dtype="float32")[0]


@pytest.fixture(scope="session")
def torch_conversion(eng_cfg: Config, ckpt, sung_clip, voice_profile: VoiceProfile,
                     tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """``(clip, torch output)``: the reference conversion other backends are compared with."""
    from engine.backends.select import select_runners

    clip = sung_clip(seconds=1.5, f0=220.0, seed=8)
    runners = select_runners(eng_cfg, ckpt, "torch", "fp32", None, "cpu")
    return clip, convert_clip(eng_cfg, ckpt, runners, clip, tmp_path_factory.mktemp("torch_out") / "t.wav",
                              voice_profile)


def load_fake_tensorrt(version: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import ``tests/fakes/tensorrt`` as ``tensorrt`` in ``version``'s mode (unloaded again by monkeypatch)."""
    import importlib.util

    monkeypatch.setenv("FAKE_TENSORRT_VERSION", version)
    for name in ("tensorrt", "tensorrt._build"):
        monkeypatch.setitem(sys.modules, name, None)  # remembers what was there, to put back after the test
        del sys.modules[name]
    # Loaded from its folder without touching sys.path: restoring sys.path after the test would also drop
    # entries that imports made during the test added (onnxruntime.transformers appends its own folder).
    package = FAKES / "tensorrt"
    spec = importlib.util.spec_from_file_location("tensorrt", package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tensorrt"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def no_tensorrt(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make ``import tensorrt`` fail, as on a host without it (whatever this machine has installed)."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    yield


@pytest.fixture
def log_lines(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    caplog.set_level(logging.INFO)
    return lambda: [r.getMessage() for r in caplog.records]
