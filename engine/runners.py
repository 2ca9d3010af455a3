"""The five component runners of one conversion setup, and how to load them for a backend."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from engine.backends.base import ComponentRunner
from engine.checkpoint import LoadedCheckpoint
from engine.config import Config
from engine.models.inference import COMPONENT_IO

log = logging.getLogger(__name__)


@dataclass
class Runners:
    content_encoder: ComponentRunner
    pitch_encoder: ComponentRunner
    flow_decoder: ComponentRunner
    mel_projection: ComponentRunner
    vocoder: ComponentRunner
    checkpoint: LoadedCheckpoint | None = None
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, str]:
        """``{component: "backend/precision"}``."""
        return {c: f"{getattr(self, c).backend}/{getattr(self, c).precision}" for c in COMPONENT_IO}

    @property
    def trained(self) -> bool:
        return bool(self.checkpoint and self.checkpoint.trained)


def configure_threads(cfg: Config) -> int:
    """Set torch's thread counts from ``runtime.threads`` (0 = all cores); returns the count used."""
    import os

    import torch

    threads = cfg.runtime.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process
        pass
    return threads


def check_device(device: str) -> str:
    """``device`` if this process can run torch on it, else :class:`ArtifactError` saying why not."""
    import re

    import torch

    from engine.errors import ArtifactError

    match = re.fullmatch(r"cpu|cuda(?::(\d+))?", device)
    if not match:
        raise ArtifactError(f"device {device!r} is not one of cpu, cuda, cuda:N")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ArtifactError(f"device {device}: no CUDA GPU is visible to this process (this torch is "
                                f"{torch.__version__}); use --device cpu")
        index = int(match.group(1) or 0)
        if index >= torch.cuda.device_count():
            raise ArtifactError(f"device {device}: this host has {torch.cuda.device_count()} CUDA GPU(s)")
    return device


def load_runners(cfg: Config, backend: str = "torch", precision: str = "fp32",
                 engine_dir: str | Path | None = None, device: str | None = None) -> Runners:
    """Load every component for ``backend`` (see :mod:`engine.backends.select` for the others).

    Like the thread counts, this sets a process-wide policy: freed memory stays in the process
    (:func:`engine.allocator.retain_freed_memory`), so chunks after the first do not page-fault.
    """
    from engine.allocator import retain_freed_memory

    device = check_device(device or cfg.runtime.device)
    configure_threads(cfg)
    retain_freed_memory()
    from engine.pretrained.attach import load_configured_checkpoint

    ckpt = load_configured_checkpoint(cfg)
    ckpt.model.to(device)
    if not ckpt.trained:
        log.warning("model checkpoint %s is UNTRAINED: the output will not sound like the target voice",
                    ckpt.path)
    from engine.backends.select import select_runners

    runners = select_runners(cfg, ckpt, backend, precision, engine_dir, device)
    return Runners(**runners, checkpoint=ckpt)  # type: ignore[arg-type]
