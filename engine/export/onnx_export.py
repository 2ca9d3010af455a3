"""Export the five inference components to ONNX, check each against PyTorch, and write manifests.

torch 2.13's ``torch.export``-based exporter (``dynamo=True``) is used: the legacy TorchScript exporter is
deprecated there. Each component is traced with a batch of 2 (a size-1 axis would be specialised to the
constant 1) through its inference wrapper, with symbolic batch and time axes, written as one file
(``external_data=False``), then run in ONNX Runtime at two other lengths and batch sizes and compared
with PyTorch: a shape frozen into the graph by a Python branch fails that check.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engine.checkpoint import LoadedCheckpoint, file_sha256
from engine.config import AudioConfig, Config, ModelConfig, ProfileSeconds
from engine.errors import ArtifactError
from engine.export.manifest import GRAPH_REVISION, Manifest, now_iso, write_manifest
from engine.export.specs import BATCH, FRAMES, SAMPLES, ComponentSpec, component_specs, probe_inputs
from engine.export.translations import custom_translations
from engine.models.inference import COMPONENT_IO, inference_module
from engine.models.svc import SVCModel

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18       # TensorRT 10's parser reads opsets 9-20; ORT quantization handles 18 well
TRACE_BATCH = 2
TRACE_FRAMES = 64
CHECKS = ((1, 37), (2, 111))  # (batch, frames) pairs unlike the trace shape
PARITY_RTOL = 1e-4

LogFn = Callable[[str], None]
ProgressFn = Callable[[str, int, int], None]


def relative_error(actual: np.ndarray, reference: np.ndarray) -> float:
    """Largest absolute difference over the reference's largest magnitude."""
    scale = max(float(np.max(np.abs(reference))), 1e-12)
    return float(np.max(np.abs(actual.astype(np.float64) - reference))) / scale


def strip_weight_norm(model: nn.Module) -> nn.Module:
    """Fold every parametrization (weight norm, spectral norm, ...) into plain weights and remove any
    old-style ``weight_norm`` hook, in place, so the graph holds one tensor per weight. The function the
    model computes is unchanged. (In place because parametrized classes are shared with deep copies:
    removing a parametrization from a copy would break the original; see :func:`inference_copy`.)"""
    from torch.nn.utils import parametrize
    from torch.nn.utils.weight_norm import WeightNorm

    for module in model.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations.keys()):  # type: ignore[union-attr,operator]
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, WeightNorm):
                torch.nn.utils.remove_weight_norm(module, hook.name)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def inference_copy(model: SVCModel) -> SVCModel:
    """A separate, weight-norm-free copy of ``model`` for export (the caller's model is left as it is).

    A component of another class than the model's own (a pretrained network put in its place, already
    weight-norm-free and in eval mode) is shared with the copy, not copied."""
    fresh = SVCModel(model.model_config, model.audio_config)  # type: ignore[arg-type]
    for name, child in model.named_children():
        if type(child) is not type(getattr(fresh, name)):
            setattr(fresh, name, child)
    fresh.load_state_dict(model.state_dict())
    return strip_weight_norm(fresh)  # type: ignore[return-value]


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Keep the exporter's per-initializer INFO lines, its note that torchvision ops are not registered, and
    its axis-naming and deprecation warnings out of the user's log (export errors still raise)."""
    loggers = [logging.getLogger(n) for n in ("onnx_ir", "onnxscript", "torch.onnx", "torch.export")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*axis name.*will not be used.*")
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def _dynamic_shapes(spec: ComponentSpec, hop: int) -> dict[str, dict[int, object]]:
    from torch.export import Dim

    batch = Dim(BATCH, min=1)
    frames = Dim(FRAMES, min=2)
    free_samples = Dim(SAMPLES, min=2 * hop)
    out: dict[str, dict[int, object]] = {}
    for ts in spec.inputs:
        axes: dict[int, object] = {}
        for axis, d in enumerate(ts.dims):
            if d == BATCH:
                axes[axis] = batch
            elif d == FRAMES:
                axes[axis] = frames
            elif d == SAMPLES:  # frames * hop wherever frames is also an axis of the component
                axes[axis] = free_samples if spec.component == "content_encoder" else frames * hop
        out[ts.name] = axes
    return out


def _torch_forward(module: nn.Module, spec: ComponentSpec, inputs: dict[str, np.ndarray]) -> np.ndarray:
    with torch.inference_mode():
        return module(*[torch.from_numpy(inputs[s.name]) for s in spec.inputs]).numpy()


def check_onnx(path: Path, module: nn.Module, spec: ComponentSpec, hop: int) -> dict[str, float]:
    """Run the ONNX file in ONNX Runtime at the :data:`CHECKS` shapes and compare it with PyTorch.

    Raises:
        ArtifactError: an output shape is wrong (a dim frozen at export) or the values differ by more
            than :data:`PARITY_RTOL` relative.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    report: dict[str, float] = {}
    for batch, frames in CHECKS:
        inputs = probe_inputs(spec, batch, frames, hop, seed=frames)
        expected = spec.outputs[0].shape(batch, frames, hop)
        out = session.run(None, inputs)[0]
        if tuple(out.shape) != expected:
            raise ArtifactError(f"{spec.component}: exported graph gives shape {tuple(out.shape)} for {frames} frames "
                                f"x batch {batch}, PyTorch gives {expected}: a dimension was frozen at export")
        err = relative_error(out, _torch_forward(module, spec, inputs))
        report[f"max_rel_error_b{batch}_t{frames}"] = err
        if not err <= PARITY_RTOL:
            raise ArtifactError(f"{spec.component}: ONNX Runtime differs from PyTorch by {err:.2e} (relative) "
                                f"at {frames} frames; the limit is {PARITY_RTOL:g}")
    return report


def export_component(model: SVCModel, component: str, path: Path, opset: int = DEFAULT_OPSET) -> dict[str, float]:
    """Export one component of an already weight-norm-stripped model to ``path``; return its parity figures."""
    model_cfg: ModelConfig = model.model_config  # type: ignore[assignment]
    audio_cfg: AudioConfig = model.audio_config  # type: ignore[assignment]
    spec = component_specs(model_cfg, audio_cfg)[component]
    hop = audio_cfg.hop_length
    module = inference_module(model, component)
    example = probe_inputs(spec, TRACE_BATCH, TRACE_FRAMES, hop)
    args = tuple(torch.from_numpy(example[s.name]) for s in spec.inputs)
    ins, outs = COMPONENT_IO[component]
    try:
        with quiet_exporter():
            torch.onnx.export(module, args, str(path), input_names=list(ins), output_names=list(outs),
                              opset_version=opset, dynamo=True, external_data=False, verbose=False,
                              dynamic_shapes=_dynamic_shapes(spec, hop),
                              custom_translation_table=custom_translations())
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types; the user needs one message
        raise ArtifactError(f"{component}: ONNX export failed: {str(exc).strip().splitlines()[0][:300]}") from exc
    return check_onnx(path, module, spec, hop)


def component_manifest(spec: ComponentSpec, *, backend: str, precision: str, artifact: Path, onnx_sha256: str,
                       checkpoint_sha256: str, opset: int, profile: ProfileSeconds) -> Manifest:
    """A manifest for ``artifact`` (its hash is taken here); callers add TensorRT/calibration fields."""
    return Manifest(
        component=spec.component, backend=backend, precision=precision, artifact=artifact.name,
        artifact_sha256=file_sha256(artifact), checkpoint_sha256=checkpoint_sha256, onnx_sha256=onnx_sha256,
        opset=opset,
        inputs=[{"name": s.name, "dims": list(s.dims)} for s in spec.inputs],
        outputs=[{"name": s.name, "dims": list(s.dims)} for s in spec.outputs],
        dynamic_axes={s.name: {str(k): v for k, v in s.dynamic_axes().items()} for s in spec.inputs + spec.outputs},
        profile_seconds={"min": profile.min, "opt": profile.opt, "max": profile.max},
        created=now_iso(), graph_revision=GRAPH_REVISION,
    )


def export_components(ckpt: LoadedCheckpoint, out_dir: str | Path, opset: int = DEFAULT_OPSET, *,
                      profile: ProfileSeconds | None = None, log_line: LogFn | None = None,
                      progress: ProgressFn | None = None) -> dict[str, Path]:
    """Export all five components of ``ckpt`` to ``<out_dir>/<component>.onnx`` with manifests.

    Files are written to a staging folder first and moved into ``out_dir`` only after every component
    exported and passed its check, manifests last.

    Returns:
        ``{component: path of the .onnx}``.
    """
    say = log_line or (lambda line: log.info("%s", line))
    profile = profile or ProfileSeconds()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = inference_copy(ckpt.model)
    specs = component_specs(ckpt.model.model_config, ckpt.model.audio_config)
    stage = Path(tempfile.mkdtemp(prefix=".export-", dir=out))
    try:
        manifests = []
        for i, component in enumerate(COMPONENT_IO):
            path = stage / f"{component}.onnx"
            say(f"exporting {component} (opset {opset})")
            parity = export_component(model, component, path, opset)  # type: ignore[arg-type]
            worst = max(parity.values())
            say(f"{component}: ONNX Runtime vs PyTorch max relative error {worst:.2e} at 2 lengths")
            m = component_manifest(specs[component], backend="onnx", precision="fp32", artifact=path,
                                   onnx_sha256=file_sha256(path), checkpoint_sha256=ckpt.sha256, opset=opset,
                                   profile=profile)
            m.quality = {"parity": parity}
            manifests.append(m)
            if progress:
                progress("exporting", i + 1, len(COMPONENT_IO))
        paths = {}
        for m in manifests:
            paths[m.component] = out / m.artifact
            shutil.move(str(stage / m.artifact), paths[m.component])
        for m in manifests:
            write_manifest(out, m)
        return paths
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def export_voice_conversion_pipeline(cfg: Config, out_dir: str | Path, checkpoint: str | Path | None = None, *,
                                     opset: int = DEFAULT_OPSET, log_line: LogFn | None = None,
                                     progress: ProgressFn | None = None) -> dict[str, Path]:
    """Export the whole conversion pipeline (content encoder, pitch encoder, flow decoder, mel projection
    and vocoder) of ``checkpoint`` (default: the configured one) to ``out_dir``."""
    from engine.pretrained.attach import load_configured_checkpoint

    ckpt = load_configured_checkpoint(cfg, checkpoint)
    return export_components(ckpt, out_dir, opset, profile=cfg.tensorrt.profile_seconds, log_line=log_line,
                             progress=progress)
