"""ONNX export: all five components, dynamic axes, parity with PyTorch, manifests and stale refusal."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from engine.checkpoint import file_sha256
from engine.errors import ArtifactError
from engine.export.manifest import GRAPH_REVISION, QUANTIZATION_REVISION, read_manifest, verify_artifact, write_manifest
from engine.export.onnx_export import PARITY_RTOL, relative_error, strip_weight_norm
from engine.export.specs import component_specs, probe_inputs
from engine.models.inference import COMPONENT_IO, inference_module

pytest_plugins = ["engines_fixtures"]


def test_every_component_is_one_onnx_file_with_a_manifest(exported: Path, ckpt, eng_cfg) -> None:
    assert sorted(p.name for p in exported.iterdir()) == sorted(
        [f"{c}.onnx" for c in COMPONENT_IO] + [f"{c}.json" for c in COMPONENT_IO])  # no .onnx.data beside them
    profile = eng_cfg.tensorrt.profile_seconds
    for c, (ins, outs) in COMPONENT_IO.items():
        m = read_manifest(exported, c)
        assert m.checkpoint_sha256 == file_sha256(eng_cfg.checkpoint_path) == ckpt.sha256
        assert m.artifact_sha256 == m.onnx_sha256 == file_sha256(exported / f"{c}.onnx")
        assert m.opset >= 17 and m.precision == "fp32" and m.backend == "onnx"
        assert [i["name"] for i in m.inputs] == list(ins) and [o["name"] for o in m.outputs] == list(outs)
        assert m.profile_seconds == {"min": profile.min, "opt": profile.opt, "max": profile.max}
        assert m.created and m.quality["parity"]
        model = onnx.load(str(exported / f"{c}.onnx"))
        assert [i.name for i in model.graph.input] == list(ins)
        assert [o.name for o in model.graph.output] == list(outs)


def test_batch_and_time_axes_are_symbolic(exported: Path) -> None:
    for c in COMPONENT_IO:
        model = onnx.load(str(exported / f"{c}.onnx"))
        for vi in list(model.graph.input) + list(model.graph.output):
            dims = vi.type.tensor_type.shape.dim
            if vi.name == "temperature":
                assert [d.dim_value for d in dims] == [1]
                continue
            assert dims[0].dim_param, f"{c}.{vi.name}: batch axis is fixed"
            if vi.name != "phase0":
                assert dims[-1].dim_param, f"{c}.{vi.name}: time axis is fixed"
    vocoder = onnx.load(str(exported / "vocoder.onnx"))
    noise = next(i for i in vocoder.graph.input if i.name == "noise")
    assert [d.dim_value or d.dim_param for d in noise.type.tensor_type.shape.dim][1] == 1  # [b, 1, s]


@pytest.mark.parametrize("component", list(COMPONENT_IO))
def test_onnxruntime_matches_pytorch_at_lengths_unlike_the_trace(exported: Path, ckpt, component: str) -> None:
    import onnxruntime as ort

    model = ckpt.model
    spec = component_specs(model.model_config, model.audio_config)[component]
    hop = model.audio_config.hop_length
    module = inference_module(model, component)
    session = ort.InferenceSession(str(exported / f"{component}.onnx"), providers=["CPUExecutionProvider"])
    for batch, frames in ((1, 23), (2, 57)):
        inputs = probe_inputs(spec, batch, frames, hop, seed=5)
        with torch.inference_mode():
            ref = module(*[torch.from_numpy(inputs[s.name]) for s in spec.inputs]).numpy()
        out = session.run(None, inputs)[0]
        assert out.shape == ref.shape == spec.outputs[0].shape(batch, frames, hop)
        err = relative_error(out, ref)
        print(f"{component} b{batch} t{frames}: max relative error {err:.2e}")
        assert err <= PARITY_RTOL


def test_weight_norm_is_folded_whatever_its_kind() -> None:
    from torch.nn.utils import parametrizations, parametrize

    net = torch.nn.Sequential(parametrizations.weight_norm(torch.nn.Conv1d(3, 4, 3)),
                              torch.nn.utils.weight_norm(torch.nn.Conv1d(4, 2, 1)))
    x = torch.randn(1, 3, 9)
    with torch.no_grad():
        before = net(x)
    stripped = strip_weight_norm(net)
    assert not any(parametrize.is_parametrized(m) for m in stripped.modules())
    assert not any(hook for m in stripped.modules() for hook in m._forward_pre_hooks.values())
    assert {n for n, _ in stripped.named_parameters()} == {"0.weight", "0.bias", "1.weight", "1.bias"}
    torch.testing.assert_close(stripped(x), before)


def test_the_export_copy_leaves_the_callers_model_alone(ckpt) -> None:
    from engine.export.onnx_export import inference_copy

    copy = inference_copy(ckpt.model)
    assert copy is not ckpt.model
    for (name, a), (_, b) in zip(copy.state_dict().items(), ckpt.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
        assert a.data_ptr() != b.data_ptr()


def _copy(exported: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "onnx"
    shutil.copytree(exported, folder)
    return folder


def test_stale_or_mismatched_artifacts_are_refused_with_the_reason(exported: Path, ckpt, tmp_path: Path) -> None:
    folder = _copy(exported, tmp_path)
    manifest, path = verify_artifact(folder, "mel_projection", ckpt.sha256, backends=("onnx",))
    assert path == folder / "mel_projection.onnx"
    with pytest.raises(ArtifactError, match="stale: made from checkpoint"):
        verify_artifact(folder, "mel_projection", "0" * 64, backends=("onnx",))
    with pytest.raises(ArtifactError, match="expected tensorrt"):
        verify_artifact(folder, "mel_projection", ckpt.sha256, backends=("tensorrt",))
    # An export from before the graph code changed (a manifest without the field reads as revision 1).
    old = json.loads((folder / "mel_projection.json").read_text())
    assert old.pop("graph_revision") == GRAPH_REVISION
    (folder / "mel_projection.json").write_text(json.dumps(old))
    with pytest.raises(ArtifactError, match=f"stale: exported by graph revision 1, this version exports revision "
                                            f"{GRAPH_REVISION}"):
        verify_artifact(folder, "mel_projection", ckpt.sha256, backends=("onnx",))
    write_manifest(folder, manifest)
    with open(folder / "pitch_encoder.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ArtifactError, match="does not match its manifest"):
        verify_artifact(folder, "pitch_encoder", ckpt.sha256, backends=("onnx",))
    (folder / "vocoder.onnx").unlink()
    with pytest.raises(ArtifactError, match="vocoder.onnx is missing"):
        verify_artifact(folder, "vocoder", ckpt.sha256, backends=("onnx",))
    (folder / "flow_decoder.json").unlink()
    with pytest.raises(ArtifactError, match="no manifest"):
        verify_artifact(folder, "flow_decoder", ckpt.sha256, backends=("onnx",))
    manifest.artifact = "../content_encoder.onnx"
    write_manifest(folder, manifest)
    with pytest.raises(ArtifactError, match="outside its folder"):
        verify_artifact(folder, "mel_projection", ckpt.sha256, backends=("onnx",))
    (folder / "content_encoder.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="unreadable"):
        read_manifest(folder, "content_encoder")


@pytest.mark.parametrize("edit, says", [
    (lambda m: [1, 2], "a JSON list, not an object"),
    (lambda m: m | {"checkpoint_sha256": 12345}, "checkpoint_sha256 is 12345, not str"),
    (lambda m: m | {"graph_revision": "2"}, 'graph_revision is "2", not int'),
    (lambda m: m | {"inputs": {}}, "inputs is {}, not list"),
    (lambda m: {k: v for k, v in m.items() if k != "artifact"}, "missing 1 required positional argument"),
])
def test_an_edited_manifest_is_refused_as_unreadable(exported: Path, tmp_path: Path, edit, says: str) -> None:
    folder = _copy(exported, tmp_path)
    path = folder / "pitch_encoder.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    with pytest.raises(ArtifactError, match=r"pitch_encoder: manifest .* is unreadable \(.*") as exc:
        read_manifest(folder, "pitch_encoder")
    assert says in str(exc.value)


def test_an_artifact_of_another_precision_is_refused(exported: Path, ckpt, tmp_path: Path) -> None:
    folder = _copy(exported, tmp_path)
    manifest = read_manifest(folder, "mel_projection")
    manifest.precision = "int8"  # as if an int8 build had been copied where fp32 models belong
    manifest.quantization_revision = QUANTIZATION_REVISION
    write_manifest(folder, manifest)
    with pytest.raises(ArtifactError, match="is an int8 artifact where fp32 ones belong"):
        verify_artifact(folder, "mel_projection", ckpt.sha256, backends=("onnx",), precision="fp32")
    assert verify_artifact(folder, "mel_projection", ckpt.sha256, backends=("onnx",), precision="int8")
    # A build keeps FP32 for a component that fails the lower precision's limits: that one is allowed.
    assert verify_artifact(folder, "vocoder", ckpt.sha256, backends=("onnx",), precision="int8")


def test_a_stale_export_is_not_loaded_by_the_onnxruntime_backend(exported: Path, eng_cfg, ckpt, tmp_path) -> None:
    from engine.backends.select import select_runners

    folder = _copy(exported, tmp_path)
    data = json.loads((folder / "flow_decoder.json").read_text())
    data["checkpoint_sha256"] = "f" * 64
    (folder / "flow_decoder.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=r"flow_decoder .*stale"):
        select_runners(eng_cfg, ckpt, "onnxruntime", "fp32", folder, "cpu")


def test_probe_inputs_are_deterministic_and_typical(ckpt) -> None:
    spec = component_specs(ckpt.model.model_config, ckpt.model.audio_config)["vocoder"]
    a = probe_inputs(spec, 2, 50, 160, seed=3)
    b = probe_inputs(spec, 2, 50, 160, seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    voiced = a["f0"][a["f0"] > 0]
    assert voiced.size and voiced.min() > 50 and voiced.max() < 1100
    assert a["noise"].shape == (2, 1, 50 * 160)


def test_onnxruntime_fuses_every_gelu(exported: Path, tmp_path: Path) -> None:
    """The exported GELUs are in the op order ONNX Runtime's fusion recognises: its optimized graph has
    Gelu kernels and no Erf left (the exporter's own order stays five separate elementwise ops)."""
    import onnxruntime as ort

    from engine.backends.onnxruntime_backend import session_options

    for c in ("content_encoder", "flow_decoder", "vocoder"):
        plain = [n.op_type for n in onnx.load(str(exported / f"{c}.onnx")).graph.node]
        assert "Erf" in plain, f"{c} has no GELU to fuse"
        opts = session_options(1)
        opts.optimized_model_filepath = str(tmp_path / f"{c}.opt.onnx")
        ort.InferenceSession(str(exported / f"{c}.onnx"), opts, providers=["CPUExecutionProvider"])
        fused = [n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node]
        assert "Erf" not in fused and fused.count("Gelu") == plain.count("Erf"), c
