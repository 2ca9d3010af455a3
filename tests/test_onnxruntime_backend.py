"""ONNX Runtime backend: sessions, threads, parity with PyTorch end to end (API and CLI), auto selection."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from engines_fixtures import snr_db

from engine.backends.onnxruntime_backend import OrtRunner, load_ort_runner, providers_for, session_options
from engine.backends.select import select_runners
from engine.errors import ArtifactError
from engine.models.inference import COMPONENT_IO

pytest_plugins = ["engines_fixtures"]


def test_sessions_follow_the_thread_settings_and_spin_only_within_a_run(exported: Path) -> None:
    opts = session_options(3)
    assert opts.intra_op_num_threads == 3 and opts.inter_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert opts.get_session_config_entry("session.force_spinning_stop") == "1"
    assert session_options(3, spin=False).get_session_config_entry("session.intra_op.allow_spinning") == "0"
    runner = OrtRunner(exported / "mel_projection.onnx", "mel_projection", "fp32", threads=1)
    session = runner.session
    latent = np.zeros((1, 192, 30), np.float32)
    first, second = runner(latent=latent), runner(latent=latent)
    assert runner.session is session and np.array_equal(first, second)
    assert runner.providers == ["CPUExecutionProvider"]


def test_cuda_provider_only_for_a_cuda_device_that_onnxruntime_has(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert providers_for("cuda:1") == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    assert providers_for("cpu") == ["CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert providers_for("cuda") == ["CPUExecutionProvider"]


def test_the_config_switches_spinning(eng_cfg, ckpt, exported: Path) -> None:
    for spin, entry in ((True, "1"), (False, "0")):
        cfg = dataclasses.replace(eng_cfg, runtime=dataclasses.replace(eng_cfg.runtime, spin=spin))
        runner = load_ort_runner(cfg, ckpt.sha256, exported, "pitch_encoder", "fp32", "cpu")
        assert runner.session.get_session_options().get_session_config_entry(
            "session.intra_op.allow_spinning") == entry


def test_fp16_is_refused_clearly_on_cpu(eng_cfg, ckpt, exported: Path) -> None:
    with pytest.raises(ArtifactError, match="FP16 needs the CUDA execution provider"):
        load_ort_runner(eng_cfg, ckpt.sha256, exported, "vocoder", "fp16", "cpu")


def test_cli_convert_onnxruntime_matches_torch(run_cli, exported: Path, sung_clip, tmp_path: Path) -> None:
    clip = sung_clip(seconds=1.5, f0=247.0, seed=4)
    outs = {}
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / f"{backend}.wav"
        result = run_cli(["convert", clip, "-o", out, "--voice", "testvoice", "--backend", backend, "--seed", "5",
                          "--engine-dir", exported])
        assert result.returncode == 0, result.stderr
        assert f"vocoder={backend}/fp32" in result.stdout
        outs[backend] = sf.read(str(out), dtype="float32")[0]
    snr = snr_db(outs["torch"], outs["onnxruntime"])
    print(f"CLI end to end ONNX Runtime vs torch: {snr:.1f} dB SNR")
    assert snr >= 30.0


def test_auto_picks_fresh_models_per_component_and_says_why(eng_cfg, ckpt, exported: Path, tmp_path: Path,
                                                            no_tensorrt, log_lines) -> None:
    folder = tmp_path / "engines"
    shutil.copytree(exported, folder)
    manifest = json.loads((folder / "vocoder.json").read_text())
    manifest["checkpoint_sha256"] = "0" * 64
    (folder / "vocoder.json").write_text(json.dumps(manifest))
    runners = select_runners(eng_cfg, ckpt, "auto", "fp32", folder, "cpu")
    chosen = {c: r.backend for c, r in runners.items()}
    assert chosen == {**{c: "onnxruntime" for c in COMPONENT_IO}, "vocoder": "torch"}
    lines = "\n".join(log_lines())
    assert "auto: content_encoder runs on onnxruntime/fp32" in lines
    assert "TensorRT is not installed" in lines
    assert "auto: vocoder runs on torch/fp32" in lines and "stale" in lines


def test_explicit_backend_without_models_names_the_command_to_run(eng_cfg, ckpt, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="autovoice build-engines --backend onnxruntime --precision int8"):
        select_runners(eng_cfg, ckpt, "onnxruntime", "int8", tmp_path, "cpu")


@pytest.mark.gpu
def test_cuda_execution_provider_matches_cpu(exported: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("ONNX Runtime has no CUDA execution provider here")
    cpu = OrtRunner(exported / "flow_decoder.onnx", "flow_decoder", device="cpu")
    gpu = OrtRunner(exported / "flow_decoder.onnx", "flow_decoder", device="cuda")
    assert gpu.providers[0] == "CUDAExecutionProvider"
    rng = np.random.default_rng(0)
    feed = {"noise": rng.standard_normal((1, 192, 80), dtype=np.float32), "mask": np.ones((1, 1, 80), np.float32),
            "conditioning": rng.standard_normal((1, cpu.session.get_inputs()[2].shape[1], 80), dtype=np.float32),
            "temperature": np.array([0.5], np.float32)}
    assert snr_db(cpu(**feed), gpu(**feed)) > 40.0
