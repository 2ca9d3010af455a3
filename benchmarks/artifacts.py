"""Which backend/precision targets this machine can run, and their artifacts, built when missing.

Building uses the project's own tools (:func:`engine.build.build_engines`, which exports through
:mod:`engine.export.onnx_export` and quantizes through :mod:`engine.quantize`, and
:func:`engine.calibration.make_calibration_set`), into the benchmark's engine folder; an artifact that
is already there and fresh (its manifest matches the checkpoint) is reused.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ArtifactError

log = logging.getLogger(__name__)
LogFn = Callable[[str], None]

# Set to 1 to benchmark a TensorRT module that executes on the host (the test double in tests/fakes):
# its figures are ONNX Runtime's, so it is skipped unless asked for.
HOST_TENSORRT_ENV = "AUTOVOICE_BENCH_HOST_TENSORRT"


@dataclass(frozen=True)
class Target:
    """One thing to measure: a backend at a precision on a device."""

    backend: str    # torch | onnxruntime | tensorrt
    precision: str  # fp32 | fp16 | int8
    device: str     # cpu | cuda

    @property
    def label(self) -> str:
        suffix = "@cuda" if self.device == "cuda" and self.backend != "tensorrt" else ""
        return f"{self.backend}/{self.precision}{suffix}"


REFERENCE = Target("torch", "fp32", "cpu")
ALL_TARGETS = (
    REFERENCE,
    Target("onnxruntime", "fp32", "cpu"),
    Target("onnxruntime", "int8", "cpu"),
    Target("tensorrt", "fp32", "cuda"),
    Target("tensorrt", "fp16", "cuda"),
    Target("tensorrt", "int8", "cuda"),
    Target("torch", "fp16", "cuda"),
)


def parse_targets(tokens: list[str] | None) -> list[Target]:
    """``all`` (default), a backend name (all its precisions), or ``backend/precision[@cuda]`` labels.

    The torch FP32 reference is always included first: speedups and quality deltas are measured
    against it.
    """
    tokens = tokens or ["all"]
    chosen: list[Target] = [REFERENCE]
    for token in tokens:
        if token == "all":
            matches = list(ALL_TARGETS)
        elif "/" not in token:
            matches = [t for t in ALL_TARGETS if t.backend == token]
        else:
            matches = [t for t in ALL_TARGETS if t.label == token]
            if not matches and token.endswith("@cuda"):
                backend, precision = token.removesuffix("@cuda").split("/", 1)
                matches = [Target(backend, precision, "cuda")] if backend == "torch" and precision == "fp32" else []
        if not matches:
            labels = ", ".join(t.label for t in ALL_TARGETS)
            raise ArtifactError(f"unknown benchmark target {token!r}; choose all, torch, onnxruntime, tensorrt "
                                f"or one of {labels}, torch/fp32@cuda")
        chosen += [m for m in matches if m not in chosen]
    return chosen


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def unavailable_reason(target: Target) -> str | None:
    """Why ``target`` cannot run here, or None when it can."""
    if target.backend == "onnxruntime" and importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed"
    if target.backend == "tensorrt":
        from engine.backends.tensorrt_backend import executes_on_host, import_tensorrt

        try:
            trt = import_tensorrt()
        except ArtifactError as exc:
            return str(exc)
        if executes_on_host(trt):
            if os.environ.get(HOST_TENSORRT_ENV) == "1":
                return None
            return (f"the installed tensorrt ({trt.__version__}) executes on the host (a test double), not a GPU; "
                    f"set {HOST_TENSORRT_ENV}=1 to run it anyway")
        if not cuda_available():
            return "TensorRT is installed but no CUDA GPU is visible"
        return None
    if target.device == "cuda" and not cuda_available():
        return "no CUDA GPU is visible to this process"
    return None


def _trt_folder(root: Path, precision: str) -> tuple[Path, dict[str, str]]:
    from engine.backends.tensorrt_backend import device_identity, engine_key, import_tensorrt, trt_folder

    trt = import_tensorrt()
    _, cc = device_identity(trt, "cuda")
    return trt_folder(root, engine_key(trt, "cuda"), precision), {"tensorrt_version": str(trt.__version__),
                                                                  "compute_capability": cc}


def stale_reason(target: Target, root: Path, checkpoint_sha256: str,
                 calibration_sha256: str | None = None) -> str | None:
    """Why ``target``'s artifacts in ``root`` cannot be used (missing, stale, other calibration), or None."""
    from engine.backends.onnxruntime_backend import ORT_BACKENDS, candidate_folders

    if target.backend == "torch":
        return None
    if target.backend == "onnxruntime":
        # The runner's own search order: the built folder, and for FP32 also a plain export at the root.
        reasons = [_folder_stale(folder, ORT_BACKENDS, {}, checkpoint_sha256, calibration_sha256, target.precision)
                   for folder in candidate_folders(root, target.precision)]
        return None if None in reasons else reasons[0]
    folder, extra = _trt_folder(root, target.precision)
    return _folder_stale(folder, ("tensorrt",), extra, checkpoint_sha256, calibration_sha256, target.precision)


def _folder_stale(folder: Path, backends: tuple[str, ...], extra: dict[str, str], checkpoint_sha256: str,
                  calibration_sha256: str | None, precision: str) -> str | None:
    from engine.export.manifest import verify_artifact
    from engine.models.inference import COMPONENT_IO

    for c in COMPONENT_IO:
        if not (folder / f"{c}.json").is_file():
            return f"no {c} artifact in {folder}"
        try:
            manifest, _ = verify_artifact(folder, c, checkpoint_sha256, backends=backends, **extra)
        except ArtifactError as exc:
            return str(exc)
        if manifest.precision != precision and manifest.backend == "onnx":
            return f"{c}: a plain {manifest.precision} export, not a {precision} build"
        if calibration_sha256 and precision == "int8" and manifest.calibration_sha256 != calibration_sha256:
            return f"{c}: built with another calibration set"
    return None


class Artifacts:
    """Builds what the chosen targets need into ``root``, once, reusing fresh artifacts."""

    def __init__(self, cfg: Any, root: Path, voice: Any, input_path: Path, *, calibration: Path | None = None,
                 calibration_dir: Path | None = None, say: LogFn | None = None) -> None:
        from engine.checkpoint import file_sha256

        self.cfg, self.root, self.voice, self.input_path = cfg, Path(root), voice, Path(input_path)
        self.calibration, self.calibration_dir = calibration, calibration_dir
        self.say = say or (lambda line: log.info("%s", line))
        self.checkpoint_sha256 = file_sha256(cfg.checkpoint_path)
        self._npz: Path | None = None
        self.built: list[dict[str, Any]] = []
        self.calibration_info: dict[str, Any] | None = None

    def calibration_npz(self) -> Path:
        """The calibration set for INT8: the one given, else made from ``calibration_dir`` or the input."""
        if self._npz is not None:
            return self._npz
        from engine.calibration import make_calibration_set

        if self.calibration is not None:
            self._npz = Path(self.calibration)
            self.calibration_info = {"source": "given", "path": str(self._npz)}
            return self._npz
        out = self.root / "calibration.npz"
        if self.calibration_dir is not None:
            summary = make_calibration_set(self.cfg, self.calibration_dir, out, voices=[self.voice],
                                           log_line=self.say)
            source = str(self.calibration_dir)
        else:
            with tempfile.TemporaryDirectory(prefix="autovoice-bench-calib-") as tmp:
                shutil.copyfile(self.input_path, Path(tmp) / self.input_path.name)
                summary = make_calibration_set(self.cfg, tmp, out, voices=[self.voice], log_line=self.say)
            source = f"the input ({self.input_path.name})"
        self._npz = out
        self.calibration_info = {"source": source, "path": str(out), "crops": summary["crops"],
                                 "calibrated_seconds": summary["calibrated_seconds"]}
        return out

    def ensure(self, target: Target) -> None:
        """Make ``target``'s artifacts fresh in :attr:`root` (build them when missing or stale).

        Raises:
            ArtifactError: (or another engine error) when a build fails; the message says why.
        """
        from engine.backends.onnxruntime_backend import ORT_BACKENDS, candidate_folders
        from engine.build import build_engines
        from engine.checkpoint import file_sha256

        if target.backend == "torch":
            return
        calib_sha = file_sha256(self.calibration) if self.calibration is not None else None
        reason = stale_reason(target, self.root, self.checkpoint_sha256, calib_sha)
        if reason is None:
            self.say(f"{target.label}: reusing fresh artifacts in {self.root}")
            return
        onnx_dir = None
        fp32 = Target("onnxruntime", "fp32", "cpu")
        if target != fp32:  # every other build starts from the FP32 export: make it once
            self.ensure(fp32)
            onnx_dir = next(f for f in candidate_folders(self.root, "fp32")
                            if _folder_stale(f, ORT_BACKENDS, {}, self.checkpoint_sha256, None, "fp32") is None)
        self.say(f"{target.label}: building ({reason})")
        summary = build_engines(self.cfg, target.backend, target.precision,
                                calibration=self.calibration_npz() if target.precision == "int8" else None,
                                onnx_dir=onnx_dir, engine_dir=self.root,
                                device="cuda" if target.device == "cuda" else "cpu", log_line=self.say)
        self.built.append({"target": target.label, "seconds": summary["seconds"],
                           "components": {c: r["precision"] for c, r in summary["components"].items()}})
