"""``autovoice build-engines``: ONNX Runtime or TensorRT models for one precision, swapped in atomically.

Everything is built in a new folder beside the active one; only when every component is built (and,
for INT8, judged) is the old folder renamed away and the new one renamed into place, so a failed build
leaves the previous engines in use. Progress and log lines go through ``log_line`` (the job queue streams
them to the browser).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from engine.backends.base import PRECISIONS
from engine.backends.onnxruntime_backend import OrtRunner, cuda_available, ort_folder, thread_count
from engine.calibration import load_calibration
from engine.checkpoint import LoadedCheckpoint, file_sha256
from engine.config import Config, resolve_engine_dir
from engine.errors import ArtifactError
from engine.export.graph import convert_fp16
from engine.export.manifest import QUANTIZATION_REVISION, Manifest, read_manifest, verify_artifact, write_manifest
from engine.export.quality import gate
from engine.export.specs import component_specs
from engine.models.inference import COMPONENT_IO
from engine.quantize import quantize_component

log = logging.getLogger(__name__)
BUILD_BACKENDS = ("onnxruntime", "tensorrt")
INT8_MODES = ("qdq", "calibrator")

LogFn = Callable[[str], None]
ProgressFn = Callable[[str, int, int], None]


def swap_in(staging: Path, final: Path) -> None:
    """Make ``staging`` the active ``final`` folder; the previous one is kept until the rename succeeded."""
    backup = final.with_name(f".{final.name}.previous-{os.getpid()}-{time.time_ns()}")
    had_old = final.exists()
    if had_old:
        os.rename(final, backup)
    try:
        os.rename(staging, final)
    except BaseException:
        if had_old:
            os.rename(backup, final)
        raise
    if had_old:
        shutil.rmtree(backup, ignore_errors=True)


def source_models(cfg: Config, ckpt: LoadedCheckpoint, onnx_dir: str | Path | None, work: Path, say: LogFn,
                  progress: ProgressFn | None) -> dict[str, tuple[Path, Manifest]]:
    """The FP32 ONNX of every component: from ``onnx_dir`` (checked fresh) or exported now into ``work``."""
    if onnx_dir is None:
        from engine.export.onnx_export import export_components

        say("exporting the checkpoint's components to ONNX")
        export_components(ckpt, work, profile=cfg.tensorrt.profile_seconds, log_line=say, progress=progress)
        folder = work
    else:
        folder = Path(onnx_dir)
    out = {}
    for c in COMPONENT_IO:
        manifest, path = verify_artifact(folder, c, ckpt.sha256, backends=("onnx", "onnxruntime"))
        if manifest.precision != "fp32":
            raise ArtifactError(f"{c}: {path} is {manifest.precision}; build from an FP32 export "
                                "(`autovoice export --out DIR`)")
        out[c] = (path, manifest)
    return out


def derive_manifest(src: Manifest, artifact: Path, *, backend: str, precision: str, onnx_sha: str) -> Manifest:
    m = Manifest(**{**src.__dict__})
    m.backend, m.precision, m.artifact, m.onnx_sha256 = backend, precision, artifact.name, onnx_sha
    m.artifact_sha256 = file_sha256(artifact)
    m.quality, m.notes = dict(src.quality), []
    if precision == "int8":
        m.quantization_revision = QUANTIZATION_REVISION
    return m


def int8_candidates(cfg: Config, ckpt: LoadedCheckpoint, sources: dict[str, tuple[Path, Manifest]], data: dict,
                     work: Path, say: LogFn, progress: ProgressFn | None, activations: str = "int8"
                     ) -> tuple[dict[str, Path], dict]:
    """Quantize every component (QDQ) and judge each with ONNX Runtime; return the models to use per
    component (QDQ where accepted, FP32 where refused) and the verdicts. ``activations``: ``"int8"``
    (symmetric, what TensorRT builds) or ``"uint8"`` (what ONNX Runtime's CPU kernels fuse)."""
    model, audio = ckpt.model.model_config, ckpt.model.audio_config
    specs = component_specs(model, audio)
    threads = thread_count(cfg)
    reference, candidates, qdq, infos = {}, {}, {}, {}
    for i, c in enumerate(COMPONENT_IO):
        qdq[c] = work / f"{c}.int8.onnx"
        infos[c] = quantize_component(sources[c][0], qdq[c], specs[c], data, activations)
        kept = infos[c]["fp32_nodes"]
        kind = "int8 activations, symmetric" if activations == "int8" else "uint8 activations"
        say(f"{c}: quantized (QDQ, {kind}, per-channel int8 weights) on {infos[c]['examples']} example(s)"
            + (f"; kept FP32 (F0 and noise paths, log front end): {', '.join(kept)}" if kept else ""))  # type: ignore[arg-type]
        reference[c] = OrtRunner(sources[c][0], c, "fp32", threads)
        candidates[c] = OrtRunner(qdq[c], c, "int8", threads)
        if progress:
            progress("quantizing", i + 1, len(COMPONENT_IO))
    verdicts = gate(cfg, model, audio, reference, candidates, data, specs, say)
    chosen = {c: qdq[c] if verdicts[c].accepted else sources[c][0] for c in COMPONENT_IO}
    return chosen, {c: verdicts[c].to_dict() | {"fp32_nodes": infos[c]["fp32_nodes"]} for c in COMPONENT_IO}


def _build_onnxruntime(cfg: Config, ckpt: LoadedCheckpoint, sources: dict[str, tuple[Path, Manifest]],
                       precision: str, data: dict | None, calib_sha: str | None, staging: Path, work: Path,
                       say: LogFn, progress: ProgressFn | None) -> dict[str, dict]:
    verdicts: dict[str, dict] = {}
    chosen = {c: sources[c][0] for c in COMPONENT_IO}
    if precision == "int8":
        chosen, verdicts = int8_candidates(cfg, ckpt, sources, data or {}, work, say, progress, "uint8")
    results = {}
    for c in COMPONENT_IO:
        target = staging / f"{c}.onnx"
        actual = precision
        if precision == "fp16":
            actual = "fp16" if convert_fp16(sources[c][0], target, c) else "fp32"
        else:
            shutil.copyfile(chosen[c], target)
            if precision == "int8" and not verdicts[c]["accepted"]:
                actual = "fp32"
        m = derive_manifest(sources[c][1], target, backend="onnxruntime", precision=actual,
                            onnx_sha=file_sha256(target))
        m.calibration_sha256 = calib_sha
        if verdicts:
            m.quality["int8"] = verdicts[c]
        if actual != precision:
            m.notes.append(f"{precision} not used for {c}: " + (verdicts[c]["reason"] if verdicts else
                                                                 "the flow's inverse and the phase drift in FP16"))
            say(f"{c}: keeping FP32 ({m.notes[-1]})")
        write_manifest(staging, m)
        results[c] = {"precision": actual, **({"int8": verdicts[c]} if verdicts else {})}
    return results


def build_engines(cfg: Config, backend: str, precision: str, *, calibration: str | Path | None = None,
                  onnx_dir: str | Path | None = None, engine_dir: str | Path | None = None,
                  checkpoint: str | Path | None = None, int8_mode: str = "qdq", device: str | None = None,
                  log_line: LogFn | None = None, progress: ProgressFn | None = None) -> dict:
    """Build ``backend`` models or engines at ``precision`` and make them the active ones.

    Args:
        calibration: the calibration NPZ (required for int8).
        onnx_dir: an FP32 ``autovoice export`` folder to build from (default: export the checkpoint now).
        engine_dir: overrides the configured engine directory.
        int8_mode: TensorRT 10 only: ``qdq`` (the judged Q/DQ models) or ``calibrator`` (implicit INT8).

    Returns:
        A JSON-safe summary: backend, precision, folder, seconds and per-component results.

    Raises:
        ArtifactError: bad arguments, stale inputs, or a failed build (the previous engines stay active).
    """
    say = log_line or (lambda line: log.info("%s", line))
    t0 = time.perf_counter()
    if backend not in BUILD_BACKENDS:
        raise ArtifactError(f"build-engines builds {' or '.join(BUILD_BACKENDS)}, not {backend!r}")
    if precision not in PRECISIONS:
        raise ArtifactError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if int8_mode not in INT8_MODES:
        raise ArtifactError(f"unknown INT8 mode {int8_mode!r}; choose one of {', '.join(INT8_MODES)}")
    if precision == "int8" and calibration is None:
        raise ArtifactError("--precision int8 needs --calibration NPZ (make one with `autovoice calibrate`)")
    from engine.pretrained.attach import load_configured_checkpoint

    ckpt = load_configured_checkpoint(cfg, checkpoint)
    root = resolve_engine_dir(cfg, engine_dir)
    if backend == "onnxruntime":
        dev = device or cfg.runtime.device
        if precision == "fp16" and not (dev.startswith("cuda") and cuda_available()):
            raise ArtifactError("ONNX Runtime FP16 needs the CUDA execution provider (onnxruntime-gpu and "
                                "--device cuda); on CPU build fp32 or int8")
        final = ort_folder(root, precision)
    else:
        from engine.backends.tensorrt_backend import engine_key, import_tensorrt, trt_folder

        trt = import_tensorrt()
        dev = device or "cuda"
        final = trt_folder(root, engine_key(trt, dev), precision)
    data = calib_sha = None
    if precision == "int8":
        specs = component_specs(ckpt.model.model_config, ckpt.model.audio_config)
        data = load_calibration(calibration, specs, ckpt.model.audio_config.hop_length,  # type: ignore[arg-type]
                                ckpt.sha256)
        calib_sha = file_sha256(calibration)  # type: ignore[arg-type]
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.building-", dir=final.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; it becomes the shared engine folder
    work = staging / "_work"
    work.mkdir()
    say(f"building {backend} {precision} into {final} (checkpoint {ckpt.sha256[:12]})")
    try:
        sources = source_models(cfg, ckpt, onnx_dir, work / "onnx", say, progress)
        if backend == "onnxruntime":
            results = _build_onnxruntime(cfg, ckpt, sources, precision, data, calib_sha, staging, work, say,
                                         progress)
        else:
            from engine.backends.tensorrt_engines import build_tensorrt

            results = build_tensorrt(cfg, ckpt, sources, precision, int8_mode, data, calib_sha, staging, work,
                                     final.parent, dev, say, progress)
        shutil.rmtree(work)
        swap_in(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        say(f"build failed; the previous {backend} {precision} engines (if any) stay active")
        raise
    seconds = time.perf_counter() - t0
    say(f"{backend} {precision} active in {final}: " + ", ".join(f"{c}={r['precision']}" for c, r in results.items())
        + f" ({seconds:.1f} s)")
    return {"backend": backend, "precision": precision, "folder": str(final), "seconds": round(seconds, 2),
            "checkpoint_sha256": ckpt.sha256, "components": results}


def active_precisions(folder: str | Path) -> dict[str, str]:
    """``{component: precision}`` as recorded in a built folder's manifests (for reports and the studio)."""
    return {c: read_manifest(folder, c).precision for c in COMPONENT_IO if (Path(folder) / f"{c}.json").is_file()}
