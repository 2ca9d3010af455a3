"""Backend selection per component.

``torch``, ``onnxruntime`` and ``tensorrt`` load every component from that backend or fail with the
reason; ``auto`` tries TensorRT, then ONNX Runtime, then PyTorch for each component, takes the first
whose artifact is fresh (its manifest matches the checkpoint and its files), and logs what it chose and
why the others were passed over.
"""

from __future__ import annotations

import logging
from pathlib import Path

from engine.backends.base import BACKENDS, PRECISIONS, ComponentRunner
from engine.backends.onnxruntime_backend import load_ort_runner
from engine.backends.torch_backend import TorchRunner
from engine.checkpoint import LoadedCheckpoint
from engine.config import Config, resolve_engine_dir
from engine.errors import ArtifactError
from engine.models.inference import COMPONENT_IO

log = logging.getLogger(__name__)


def _torch(ckpt: LoadedCheckpoint, component: str, precision: str, device: str) -> TorchRunner:
    if precision == "int8":
        raise ArtifactError("the torch backend has no int8; use --backend onnxruntime or tensorrt for int8")
    return TorchRunner(ckpt.model, component, device, precision)


def _tensorrt(cfg: Config, ckpt: LoadedCheckpoint, engine_dir: Path, component: str, precision: str,
              device: str) -> ComponentRunner:
    from engine.backends.tensorrt_backend import load_trt_runner

    return load_trt_runner(ckpt.sha256, engine_dir, component, precision, device)


def _auto(cfg: Config, ckpt: LoadedCheckpoint, engine_dir: Path, component: str, precision: str,
          device: str) -> ComponentRunner:
    reasons: list[str] = []
    for name in ("tensorrt", "onnxruntime"):
        try:
            if name == "tensorrt":
                runner = _tensorrt(cfg, ckpt, engine_dir, component, precision, device)
            else:
                runner = load_ort_runner(cfg, ckpt.sha256, engine_dir, component, precision, device)
        except ArtifactError as exc:
            reasons.append(f"{name}: {exc}")
            continue
        log.info("auto: %s runs on %s/%s%s", component, runner.backend, runner.precision,
                 f" (passed over {'; '.join(reasons)})" if reasons else " (fresh artifact)")
        return runner
    torch_precision = precision if precision == "fp16" and device.startswith("cuda") else "fp32"
    runner = _torch(ckpt, component, torch_precision, device)
    log.info("auto: %s runs on torch/%s (%s)", component, runner.precision, "; ".join(reasons))
    return runner


def select_runners(cfg: Config, ckpt: LoadedCheckpoint, backend: str, precision: str,
                   engine_dir: str | Path | None, device: str) -> dict[str, ComponentRunner]:
    """One runner per component for ``backend`` and ``precision``.

    Raises:
        ArtifactError: an unknown backend or precision, or (for an explicit backend) a component whose
            artifact is missing, stale or mismatched; the message says which and why.
    """
    if backend not in BACKENDS:
        raise ArtifactError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ArtifactError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if backend == "torch":
        return {c: _torch(ckpt, c, precision, device) for c in COMPONENT_IO}
    folder = resolve_engine_dir(cfg, engine_dir)
    runners: dict[str, ComponentRunner] = {}
    for c in COMPONENT_IO:
        if backend == "auto":
            runners[c] = _auto(cfg, ckpt, folder, c, precision, device)
        elif backend == "onnxruntime":
            runners[c] = load_ort_runner(cfg, ckpt.sha256, folder, c, precision, device)
        else:
            runners[c] = _tensorrt(cfg, ckpt, folder, c, precision, device)
    return runners
