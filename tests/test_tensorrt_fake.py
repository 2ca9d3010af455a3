"""The TensorRT backend (builder, calibrator, runtime) against the fake ``tensorrt`` in 10.x and 11.x modes.

The fake (tests/fakes/tensorrt) parses the ONNX, checks profiles and argument types, refuses APIs removed
in its version, pulls calibration batches through ``get_batch`` and runs engines with ONNX Runtime on the
buffers at the addresses it is given, so these tests check what the code builds and computes.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from engines_fixtures import TRT_VERSIONS, convert_clip, load_fake_tensorrt, snr_db

from engine.backends.select import select_runners
from engine.backends.tensorrt_backend import TrtRunner, load_trt_runner
from engine.backends.tensorrt_builder import EngineRequest, build_engine, profile_frames
from engine.build import build_engines
from engine.calibration import load_calibration
from engine.errors import ArtifactError
from engine.export.manifest import read_manifest
from engine.export.specs import component_specs, probe_inputs
from engine.models.inference import COMPONENT_IO

pytest_plugins = ["engines_fixtures"]


@pytest.fixture(params=TRT_VERSIONS, ids=lambda v: f"trt{v.split('.')[0]}")
def trt(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    return load_fake_tensorrt(request.param, monkeypatch)


def _payload(engine: Path) -> dict:
    raw = engine.read_bytes()
    return json.loads(raw[raw.index(b"\n") + 1:])


def _folder(engine_dir: Path, trt, precision: str) -> Path:
    return engine_dir / "tensorrt" / f"host-sm00-trt{trt.__version__}" / precision


def _tiny_engine(trt, tmp_path: Path):
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 4])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 4])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"], name="relu")], "tiny", [x], [y])
    path = tmp_path / "tiny.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]), str(path))
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    assert trt.OnnxParser(network, logger).parse_from_file(str(path))
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 4), (2, 4), (8, 4))
    config.add_optimization_profile(profile)
    return trt.Runtime(logger).deserialize_cuda_engine(builder.build_serialized_network(network, config)), config


def test_the_fake_refuses_removed_apis_and_bad_arguments(trt, tmp_path: Path) -> None:
    engine, config = _tiny_engine(trt, tmp_path)
    with pytest.raises(AttributeError, match="max_workspace_size was removed in TensorRT 10.0"):
        config.max_workspace_size = 1 << 30
    with pytest.raises(TypeError):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, "1 GiB")
    with pytest.raises(TypeError):
        config.set_flag(3)
    with pytest.raises(AttributeError, match="num_bindings was removed in TensorRT 10.0"):
        engine.num_bindings  # noqa: B018
    context = engine.create_execution_context()
    with pytest.raises(AttributeError, match="execute_async_v2 was removed in TensorRT 10.0"):
        context.execute_async_v2([0, 0], 0)
    assert not context.set_input_shape("x", (9, 4))  # outside the profile
    x, y = np.array([[-1, 2, -3, 4]], np.float32), np.zeros((1, 4), np.float32)
    assert context.set_input_shape("x", x.shape)
    context.set_tensor_address("x", x.ctypes.data)
    context.set_tensor_address("y", y.ctypes.data)
    assert context.execute_async_v3(0)
    np.testing.assert_array_equal(y, [[0, 2, 0, 4]])
    if trt.__version__.startswith("11"):
        for name in ("FP16", "INT8"):
            with pytest.raises(AttributeError):
                getattr(trt.BuilderFlag, name)
        assert not hasattr(trt, "IInt8EntropyCalibrator2")
        with pytest.raises(AttributeError, match="int8_calibrator was removed in TensorRT 11.0"):
            config.int8_calibrator = None
    else:
        assert trt.BuilderFlag.FP16 is not None and trt.IInt8EntropyCalibrator2 is not None


def test_fp32_engines_build_run_and_match_onnxruntime(trt, eng_cfg, ckpt, exported: Path, tmp_path: Path,
                                                      torch_conversion, voice_profile) -> None:
    lines: list[str] = []
    summary = build_engines(eng_cfg, "tensorrt", "fp32", onnx_dir=exported, engine_dir=tmp_path, log_line=lines.append)
    folder = _folder(tmp_path, trt, "fp32")
    assert summary["folder"] == str(folder)
    assert (folder.parent / "timing.cache").is_file()
    specs = component_specs(ckpt.model.model_config, ckpt.model.audio_config)
    for c in COMPONENT_IO:
        m = read_manifest(folder, c)
        assert (m.backend, m.precision, m.tensorrt_version, m.compute_capability) == ("tensorrt", "fp32",
                                                                                      trt.__version__, "0.0")
        lo, opt, hi = m.profile_shapes[COMPONENT_IO[c][0][0]]
        assert lo[-1] < opt[-1] < hi[-1]
        payload = _payload(folder / f"{c}.engine")
        assert "TF32" not in payload["flags"] and payload["strongly_typed"]
        graph = onnx.load_from_string(base64.b64decode(payload["onnx"])).graph
        assert not any(n.op_type == "Cast" and n.attribute[0].i == onnx.TensorProto.DOUBLE for n in graph.node)
    import onnxruntime as ort

    for c in COMPONENT_IO:
        runner = load_trt_runner(ckpt.sha256, tmp_path, c, "fp32", "cpu")
        feed = probe_inputs(specs[c], 1, 120, 160, seed=9)
        ref = ort.InferenceSession(str(exported / f"{c}.onnx")).run(None, feed)[0]
        out = runner(**feed)
        assert out.shape == ref.shape and snr_db(ref, out) > 60.0
    calls_before = trt.stats["executions"]
    runners = select_runners(eng_cfg, ckpt, "tensorrt", "fp32", tmp_path, "cpu")
    assert {r.backend for r in runners.values()} == {"tensorrt"}
    clip, reference = torch_conversion
    wave = convert_clip(eng_cfg, ckpt, runners, clip, tmp_path / "trt.wav", voice_profile)
    assert trt.stats["executions"] >= calls_before + 5
    assert snr_db(reference, wave) >= 30.0


def test_an_engine_for_another_tensorrt_version_is_refused(trt, eng_cfg, ckpt, exported, tmp_path: Path,
                                                           monkeypatch) -> None:
    build_engines(eng_cfg, "tensorrt", "fp32", onnx_dir=exported, engine_dir=tmp_path)
    other = "11.2.0" if trt.__version__.startswith("10") else "10.13.0"
    trt_other = load_fake_tensorrt(other, monkeypatch)
    with pytest.raises(ArtifactError, match="no TensorRT fp32 engine"):
        load_trt_runner(ckpt.sha256, tmp_path, "mel_projection", "fp32", "cpu")
    moved = _folder(tmp_path, trt_other, "fp32")
    moved.parent.mkdir(parents=True)
    _folder(tmp_path, trt, "fp32").rename(moved)
    with pytest.raises(ArtifactError, match=f"built with TensorRT {trt.__version__}"):
        load_trt_runner(ckpt.sha256, tmp_path, "mel_projection", "fp32", "cpu")


def test_fp16_uses_flags_on_10_and_an_fp16_onnx_on_11(trt, eng_cfg, exported, tmp_path: Path) -> None:
    summary = build_engines(eng_cfg, "tensorrt", "fp16", onnx_dir=exported, engine_dir=tmp_path)
    folder = _folder(tmp_path, trt, "fp16")
    for c in COMPONENT_IO:
        payload = _payload(folder / f"{c}.engine")
        reduced = c not in ("flow_decoder", "vocoder")
        assert summary["components"][c]["precision"] == ("fp16" if reduced else "fp32")
        if trt.__version__.startswith("10"):
            assert ("FP16" in payload["flags"]) == reduced and not payload["fp16_weights"]
        else:
            assert payload["strongly_typed"] and payload["fp16_weights"] == reduced
    runner = TrtRunner(folder / "mel_projection.engine", "mel_projection", "fp16", "cpu")
    latent = np.random.default_rng(0).standard_normal((1, 192, 90), dtype=np.float32)
    import onnxruntime as ort

    ref = ort.InferenceSession(str(exported / "mel_projection.onnx")).run(None, {"latent": latent})[0]
    assert snr_db(ref, runner(latent=latent)) > 30.0


@pytest.fixture(scope="module")
def quantize_once(tmp_path_factory: pytest.TempPathFactory):
    """``int8_candidates`` run for real once, then replayed: both TensorRT versions build from the same
    judged Q/DQ models (quantizing twice would only repeat test_build_engines' work)."""
    from engine import build

    real, store, cached = build.int8_candidates, tmp_path_factory.mktemp("qdq"), {}

    def once(cfg, ckpt, sources, data, work, say, progress):
        if not cached:
            chosen, verdicts = real(cfg, ckpt, sources, data, work, say, progress)
            cached["models"] = {c: Path(shutil.copy(p, store / p.name)) for c, p in chosen.items()}
            cached["verdicts"] = verdicts
        work.mkdir(parents=True, exist_ok=True)
        return {c: Path(shutil.copy(p, work / p.name)) for c, p in cached["models"].items()}, cached["verdicts"]

    return once


def test_int8_from_the_judged_qdq_models(trt, eng_cfg, exported, calibration, tmp_path: Path, quantize_once,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from engine import build

    monkeypatch.setattr(build, "int8_candidates", quantize_once)
    lines: list[str] = []
    summary = build_engines(eng_cfg, "tensorrt", "int8", calibration=calibration[0], onnx_dir=exported,
                            engine_dir=tmp_path, log_line=lines.append)
    folder = _folder(tmp_path, trt, "int8")
    int8 = [c for c, r in summary["components"].items() if r["precision"] == "int8"]
    assert len(int8) >= 3
    for c in int8:
        payload = _payload(folder / f"{c}.engine")
        assert payload["qdq"]
        assert ("INT8" in payload["flags"]) == trt.__version__.startswith("10")
        m = read_manifest(folder, c)
        assert m.quality["int8_tensorrt"]["accepted"] and m.quality["int8_onnxruntime"]["accepted"]
    assert any("judging the INT8 engines TensorRT built" in line for line in lines)


def test_parser_refuses_asymmetric_uint8_qdq(trt, ort_int8) -> None:
    """TensorRT quantizes symmetrically: the uint8 QDQ models built for ONNX Runtime's CPU kernels do not
    parse (the TensorRT build quantizes its own symmetric int8 models)."""
    path = ort_int8[0] / "onnxruntime" / "int8" / "mel_projection.onnx"
    logger = trt.Logger(trt.Logger.WARNING)
    network = trt.Builder(logger).create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    assert not parser.parse_from_file(str(path))
    assert "zero point" in parser.get_error(0).desc()


def test_int8_calibrator_on_10_pulls_batches_and_caches(monkeypatch, eng_cfg, ckpt, exported, calibration,
                                                        tmp_path: Path) -> None:
    trt = load_fake_tensorrt("10.13.0", monkeypatch)
    before = trt.stats["calibration_batches"]
    summary = build_engines(eng_cfg, "tensorrt", "int8", calibration=calibration[0], onnx_dir=exported,
                            engine_dir=tmp_path, int8_mode="calibrator")
    crops = calibration[1]["crops"]
    assert trt.stats["calibration_batches"] - before == 3 * crops
    assert {c: r["precision"] for c, r in summary["components"].items()} == {
        "content_encoder": "int8", "pitch_encoder": "fp32", "flow_decoder": "int8", "mel_projection": "int8",
        "vocoder": "fp32"}
    folder = _folder(tmp_path, trt, "int8")
    assert "F0 path" in read_manifest(folder, "vocoder").notes[0]
    assert read_manifest(folder, "flow_decoder").quality["calibration_batches"] == crops
    caches = sorted(p.name for p in (folder.parent / "calibration").iterdir())
    assert len(caches) == 3 and all(name.endswith(".cache") for name in caches)
    assert _payload(folder / "flow_decoder.engine")["calibration"]["batches"] == crops
    spec = component_specs(ckpt.model.model_config, ckpt.model.audio_config)["flow_decoder"]
    again = EngineRequest("flow_decoder", exported / "flow_decoder.onnx", tmp_path / "again.engine", spec,
                          int8_flag=True, calibration=load_calibration(calibration[0]),
                          calibration_cache=folder.parent / "calibration" / next(n for n in caches if "flow" in n))
    audio = ckpt.model.audio_config
    frames = profile_frames(eng_cfg, audio.sample_rate, audio.hop_length)
    build_engine(trt, again, eng_cfg, frames, audio.hop_length, b"", torch.device("cpu"), print)
    assert trt.stats["calibration_batches"] - before == 3 * crops  # the rebuild read the cache
    assert _payload(again.engine_path)["calibration"]["from_cache"]


def test_the_calibrator_is_refused_on_11(monkeypatch, eng_cfg, exported, calibration, tmp_path: Path) -> None:
    load_fake_tensorrt("11.2.0", monkeypatch)
    with pytest.raises(ArtifactError, match="no INT8 calibrator"):
        build_engines(eng_cfg, "tensorrt", "int8", calibration=calibration[0], onnx_dir=exported,
                      engine_dir=tmp_path, int8_mode="calibrator")
    assert not list(tmp_path.rglob("*.engine"))


def test_auto_prefers_fresh_tensorrt_engines(monkeypatch, eng_cfg, ckpt, exported, tmp_path: Path,
                                             log_lines) -> None:
    trt = load_fake_tensorrt("10.13.0", monkeypatch)
    build_engines(eng_cfg, "tensorrt", "fp32", onnx_dir=exported, engine_dir=tmp_path)
    (_folder(tmp_path, trt, "fp32") / "vocoder.engine").write_bytes(b"tampered")
    runners = select_runners(eng_cfg, ckpt, "auto", "fp32", tmp_path, "cpu")
    assert {c: r.backend for c, r in runners.items()} == {**{c: "tensorrt" for c in COMPONENT_IO},
                                                          "vocoder": "torch"}
    text = "\n".join(log_lines())
    assert "auto: mel_projection runs on tensorrt/fp32 (fresh artifact)" in text
    assert "vocoder.engine does not match its manifest" in text


def test_without_tensorrt_the_backend_says_so(no_tensorrt, eng_cfg, ckpt, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="TensorRT is not installed"):
        build_engines(eng_cfg, "tensorrt", "fp32", engine_dir=tmp_path)
    with pytest.raises(ArtifactError, match="TensorRT is not installed"):
        select_runners(eng_cfg, ckpt, "tensorrt", "fp32", tmp_path, "cuda")


@pytest.mark.gpu
def test_real_tensorrt_engine_matches_onnxruntime(eng_cfg, ckpt, exported: Path, tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    trt = pytest.importorskip("tensorrt")
    if getattr(trt, "EXECUTES_ON_HOST", False):
        pytest.skip("the fake tensorrt is loaded")
    build_engines(eng_cfg, "tensorrt", "fp32", onnx_dir=exported, engine_dir=tmp_path, device="cuda")
    import onnxruntime as ort

    specs = component_specs(ckpt.model.model_config, ckpt.model.audio_config)
    for c in COMPONENT_IO:
        runner = load_trt_runner(ckpt.sha256, tmp_path, c, "fp32", "cuda")
        feed = probe_inputs(specs[c], 1, 200, 160, seed=1)
        ref = ort.InferenceSession(str(exported / f"{c}.onnx")).run(None, feed)[0]
        assert snr_db(ref, runner(**feed)) > 40.0, c
