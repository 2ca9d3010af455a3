"""build-engines with ONNX Runtime: INT8 (QDQ) with its quality gate, atomic swaps, refusals."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile as sf

from engine import build as build_module
from engine.backends.select import select_runners
from engine.build import build_engines, swap_in
from engine.checkpoint import file_sha256
from engine.dsp import cents
from engine.errors import ArtifactError
from engine.export.manifest import QUANTIZATION_REVISION, read_manifest, verify_artifact
from engine.f0 import extract_f0
from engine.models.inference import COMPONENT_IO
from engine.pipeline import Converter, ConvertOptions
from engine.runners import Runners

pytest_plugins = ["engines_fixtures"]


def activation_zero_point_types(graph: onnx.GraphProto) -> set[str]:
    """Element types of the QuantizeLinear zero points (the quantized activations) in ``graph``."""
    init = {t.name: t for t in graph.initializer}
    return {onnx.TensorProto.DataType.Name(init[n.input[2]].data_type) for n in graph.node
            if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in init}


def test_int8_build_quantizes_with_the_f0_paths_kept_fp32(ort_int8, calibration, exported: Path) -> None:
    engine_dir, summary, lines = ort_int8
    folder = engine_dir / "onnxruntime" / "int8"
    assert summary["folder"] == str(folder) and summary["precision"] == "int8"
    calib_sha = file_sha256(calibration[0])
    for c in COMPONENT_IO:
        m = read_manifest(folder, c)
        assert m.calibration_sha256 == calib_sha and m.backend == "onnxruntime"
        q = m.quality["int8"]
        print(f"{c}: {m.precision}, SNR {q['snr_db']:.1f} dB, F0 {q['f0_delta_cents']:+.2f} cents, "
              f"mel {q['mel_distance_db']:.3f} dB")
        assert summary["components"][c]["precision"] == m.precision
        if m.precision == "int8":
            assert q["accepted"] and q["snr_db"] > 20.0
            graph = onnx.load(str(folder / f"{c}.onnx")).graph
            assert any(n.op_type == "QuantizeLinear" for n in graph.node)
            # ONNX Runtime's CPU build quantizes activations to uint8 (the QLinearConv fast path on x86).
            assert activation_zero_point_types(graph) == {"UINT8"}, c
    for c in ("pitch_encoder", "vocoder"):  # the first conv reading F0 is not quantized
        conv = read_manifest(folder, c).quality["int8"]["fp32_nodes"]
        assert conv, c
        graph = onnx.load(str(folder / f"{c}.onnx")).graph
        producers = {o: n.op_type for n in graph.node for o in n.output}
        node = next(n for n in graph.node if n.name == conv[0])
        assert producers.get(node.input[0]) != "DequantizeLinear"
        quantized = [n for n in graph.node if n.op_type == "Conv" and producers.get(n.input[0]) == "DequantizeLinear"]
        assert quantized, f"{c}: nothing quantized"
    # The vocoder's noise filterbank (fixed filters over the noise input) stays FP32 as well.
    if read_manifest(folder, "vocoder").precision == "int8":
        vocoder = onnx.load(str(folder / "vocoder.onnx")).graph
        assert "Conv" in [n.op_type for n in vocoder.node if "noise" in n.input]
        assert not any(n.op_type == "QuantizeLinear" and "noise" in n.input for n in vocoder.node)
    assert any("SNR" in line and "vs FP32" in line for line in lines)
    assert sum(read_manifest(folder, c).precision == "int8" for c in COMPONENT_IO) >= 3


def test_int8_built_by_an_older_recipe_is_refused_as_stale(ort_int8, ckpt, tmp_path: Path) -> None:
    """An INT8 artifact records the recipe revision it was quantized by; one from before the recipe changed
    (a manifest without the field reads as revision 1) is stale, and the message says to rebuild it."""
    folder = tmp_path / "int8"
    shutil.copytree(ort_int8[0] / "onnxruntime" / "int8", folder)
    c = next(c for c in COMPONENT_IO if read_manifest(folder, c).precision == "int8")
    manifest, _ = verify_artifact(folder, c, ckpt.sha256, backends=("onnxruntime",))
    assert manifest.quantization_revision == QUANTIZATION_REVISION
    old = json.loads((folder / f"{c}.json").read_text())
    old.pop("quantization_revision")
    (folder / f"{c}.json").write_text(json.dumps(old))
    with pytest.raises(ArtifactError, match=f"stale: quantized by INT8 recipe revision 1, this version quantizes "
                                            f"by revision {QUANTIZATION_REVISION}; rebuild it"):
        verify_artifact(folder, c, ckpt.sha256, backends=("onnxruntime",))


def test_int8_conversion_keeps_pitch_and_quality(eng_cfg, ckpt, ort_int8, exported, sung_clip, voice_profile,
                                                 tmp_path: Path) -> None:
    engine_dir = ort_int8[0]
    clip = sung_clip(seconds=1.5, f0=220.0, seed=21)
    results, waves = {}, {}
    for precision, folder in (("fp32", exported), ("int8", engine_dir)):
        runners = select_runners(eng_cfg, ckpt, "onnxruntime", precision, folder, "cpu")
        out = tmp_path / f"{precision}.wav"
        results[precision] = Converter(eng_cfg, Runners(**runners, checkpoint=ckpt)).convert_file(
            clip, out, voice_profile, ConvertOptions(seed=3))
        waves[precision] = sf.read(str(out), dtype="float32")[0]
    assert "onnxruntime/int8" in results["int8"].components.values()
    errors = {}
    for precision, wav in waves.items():
        got = extract_f0(wav, 16000, 160)
        target = results[precision].f0_target[: got.shape[0]]
        errors[precision] = float(np.mean(cents(got, target)))
    print(f"F0 error vs the sung F0: fp32 {errors['fp32']:.1f} cents, int8 {errors['int8']:.1f} cents")
    assert errors["int8"] - errors["fp32"] <= eng_cfg.quantization.max_f0_error_cents
    try:
        from speechmos import dnsmos
    except ImportError:
        return
    mos = {p: float(dnsmos.run(w.astype(np.float64), 16000)["ovrl_mos"]) for p, w in waves.items()}
    print(f"DNSMOS overall: fp32 {mos['fp32']:.2f}, int8 {mos['int8']:.2f}")
    assert mos["int8"] >= mos["fp32"] - 0.2


def test_quality_gate_refuses_int8_past_the_limits_and_keeps_fp32(make_cfg, eng_cfg, exported, calibration, ort_int8,
                                                                   tmp_path: Path, monkeypatch) -> None:
    strict = make_cfg(AUTOVOICE_DATA_DIR=str(eng_cfg.data_dir), AUTOVOICE__RUNTIME__THREADS="1",
                      AUTOVOICE__QUANTIZATION__CROP_SECONDS="1.0",
                      AUTOVOICE__QUANTIZATION__MAX_MEL_DISTANCE_DB="0.000001")
    built = ort_int8[0] / "onnxruntime" / "int8"
    real = build_module.quantize_component

    def reuse(src, dst, spec, data, activations):  # quantizing does not depend on the limits: reuse the session's
        c = spec.component
        if read_manifest(built, c).precision != "int8":
            return real(src, dst, spec, data, activations)
        shutil.copyfile(built / f"{c}.onnx", dst)
        return {"examples": data["pitch_encoder/f0"].shape[0], "fp32_nodes": []}

    monkeypatch.setattr(build_module, "quantize_component", reuse)
    lines: list[str] = []
    summary = build_engines(strict, "onnxruntime", "int8", calibration=calibration[0], onnx_dir=exported,
                            engine_dir=tmp_path, log_line=lines.append)
    folder = tmp_path / "onnxruntime" / "int8"
    for c in COMPONENT_IO:
        m = read_manifest(folder, c)
        assert m.precision == "fp32" and summary["components"][c]["precision"] == "fp32"
        assert m.artifact_sha256 == file_sha256(exported / f"{c}.onnx")  # the FP32 model, unchanged
        assert "mel distance" in m.notes[0]
        assert any(f"{c}: int8 SNR" in line and "REFUSED, keeping FP32" in line for line in lines)


def _fp32_build(cfg, exported: Path, engine_dir: Path) -> Path:
    build_engines(cfg, "onnxruntime", "fp32", onnx_dir=exported, engine_dir=engine_dir)
    return engine_dir / "onnxruntime" / "fp32"


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: file_sha256(p) for p in sorted(folder.iterdir())}


def test_a_failing_build_leaves_the_old_engines_active(eng_cfg, ckpt, exported: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _fp32_build(eng_cfg, exported, tmp_path)
    before = _snapshot(folder)
    calls = {"n": 0}
    real = build_module.write_manifest

    def failing(staging, manifest):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("No space left on device")
        return real(staging, manifest)

    monkeypatch.setattr(build_module, "write_manifest", failing)
    lines: list[str] = []
    with pytest.raises(OSError, match="No space left"):
        build_engines(eng_cfg, "onnxruntime", "fp32", onnx_dir=exported, engine_dir=tmp_path, log_line=lines.append)
    assert _snapshot(folder) == before
    assert sorted(p.name for p in folder.parent.iterdir()) == ["fp32"]  # no staging or backup folders left
    assert "stay active" in lines[-1]
    runners = select_runners(eng_cfg, ckpt, "onnxruntime", "fp32", tmp_path, "cpu")
    assert all(r.backend == "onnxruntime" for r in runners.values())


def test_swap_rolls_back_when_the_rename_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    final, staging = tmp_path / "fp32", tmp_path / ".fp32.building"
    final.mkdir()
    (final / "old").write_text("old")
    staging.mkdir()
    (staging / "new").write_text("new")
    real_rename, calls = os.rename, []

    def rename(src, dst):
        calls.append((Path(src).name, Path(dst).name))
        if Path(src) == staging:
            raise OSError("rename failed")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="rename failed"):
        swap_in(staging, final)
    assert (final / "old").read_text() == "old" and len(calls) == 3
    monkeypatch.setattr(os, "rename", real_rename)
    swap_in(staging, final)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fp32"] and (final / "new").is_file()


def test_int8_needs_a_calibration_set(eng_cfg) -> None:
    with pytest.raises(ArtifactError, match="needs --calibration"):
        build_engines(eng_cfg, "onnxruntime", "int8")


def test_building_from_a_stale_export_is_refused(eng_cfg, exported: Path, tmp_path: Path) -> None:
    stale = tmp_path / "stale"
    stale.mkdir()
    for c in COMPONENT_IO:
        (stale / f"{c}.onnx").write_bytes((exported / f"{c}.onnx").read_bytes())
        data = json.loads((exported / f"{c}.json").read_text()) | {"checkpoint_sha256": "a" * 64}
        (stale / f"{c}.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="stale"):
        build_engines(eng_cfg, "onnxruntime", "fp32", onnx_dir=stale, engine_dir=tmp_path / "engines")
    assert not (tmp_path / "engines" / "onnxruntime" / "fp32").exists()


def test_onnxruntime_fp16_is_refused_on_cpu(eng_cfg, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="FP16 needs the CUDA execution provider"):
        build_engines(eng_cfg, "onnxruntime", "fp16", engine_dir=tmp_path)
