"""Checkpoints carry their config: ``{"model", "audio", "state_dict", "trained", "info"}``.

Loaded with ``torch.load(weights_only=True)``; the model is built from the config inside the file, not
from the YAML, so a checkpoint always runs with the sizes it was trained with.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.config import AudioConfig, ModelConfig
from engine.errors import CheckpointError
from engine.models.svc import SVCModel

log = logging.getLogger(__name__)
FORMAT_VERSION = 1


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class LoadedCheckpoint:
    model: SVCModel
    path: Path
    sha256: str
    trained: bool
    info: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(model: SVCModel, path: str | Path, *, trained: bool, info: dict[str, Any] | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write atomically (temp file + rename) so a crash never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT_VERSION,
        "model": dataclasses.asdict(model.model_config),
        "audio": dataclasses.asdict(model.audio_config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "trained": bool(trained),
        "info": info or {},
        **(extra or {}),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_payload(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no model checkpoint at {path}: train one with `autovoice train` or point "
            "AUTOVOICE__PATHS__CHECKPOINT at a checkpoint file"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path} is not an AutoVoice checkpoint (format {FORMAT_VERSION})")
    return payload


def load_checkpoint(path: str | Path, device: str = "cpu") -> LoadedCheckpoint:
    """Build the model from the checkpoint's own config and load its weights (strict)."""
    path = Path(path)
    payload = read_payload(path)
    try:
        model = SVCModel(ModelConfig(**payload["model"]), AudioConfig(**payload["audio"]))
        model.load_state_dict(payload["state_dict"], strict=True)
    except (TypeError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path} does not match this version of the model: {exc}") from exc
    model.eval().to(device)
    return LoadedCheckpoint(model=model, path=path, sha256=file_sha256(path), trained=bool(payload["trained"]),
                            info=dict(payload.get("info") or {}))
