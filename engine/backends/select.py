"""Backend selection per component."""

from __future__ import annotations

import logging
from pathlib import Path

from engine.backends.base import BACKENDS, ComponentRunner
from engine.backends.torch_backend import TorchRunner
from engine.checkpoint import LoadedCheckpoint
from engine.config import Config
from engine.errors import ArtifactError
from engine.models.inference import COMPONENT_IO

log = logging.getLogger(__name__)


def select_runners(cfg: Config, ckpt: LoadedCheckpoint, backend: str, precision: str,
                   engine_dir: str | Path | None, device: str) -> dict[str, ComponentRunner]:
    if backend not in BACKENDS:
        raise ArtifactError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend in ("torch", "auto"):
        if backend == "auto":
            log.info("auto: no exported engines are known to this build; every component runs on torch")
        return {c: TorchRunner(ckpt.model, c, device, precision) for c in COMPONENT_IO}
    raise ArtifactError(f"backend {backend} has no artifacts: run `autovoice build-engines --backend {backend}`")
