"""Put the configured pretrained networks (``pretrained.content`` / ``pretrained.vocoder``) into a loaded
checkpoint's model, after checking that its flow was trained on what they produce.

The checkpoint records ``model.content_features`` and ``model.mel_features``. HuBERT-Soft units are only
useful to a flow trained on HuBERT-Soft units, and a HiFi-GAN only to a mel projection trained on HiFi-GAN's
mel definition; anything else is refused with the reason. The result's ``sha256`` also covers the
pretrained files, so exported artifacts made without them (or with other files) are stale for it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from pathlib import Path

from engine.checkpoint import LoadedCheckpoint, file_sha256
from engine.config import PROJECT_ROOT, AudioConfig, Config, ConfigError, ModelConfig
from engine.errors import CheckpointError
from engine.pretrained.adapters import HiFiGANVocoder, HubertSoftContent
from engine.pretrained.hifigan import load_hifigan
from engine.pretrained.hubert_soft import load_hubert_soft

log = logging.getLogger(__name__)

BUILTIN_CONTENT = ModelConfig().content_features
HUBERT_SOFT = "hubert-soft"
HIFIGAN = "hifigan"
HIFIGAN_MEL = "hifigan"  # mel_features of a checkpoint whose mel projection makes HiFi-GAN's log-mels


def parse_spec(value: str, key: str, kind: str) -> Path:
    """``"KIND:PATH"`` -> the path (relative paths from the project root).

    Raises:
        ConfigError: the value does not start with ``kind:`` or names no path.
    """
    prefix, sep, path = value.partition(":")
    if not sep or prefix != kind or not path:
        raise ConfigError(f"pretrained.{key}: expected '{kind}:PATH', got {value!r}")
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else PROJECT_ROOT / p


def _content(cfg: Config, ckpt: LoadedCheckpoint, audio: AudioConfig) -> tuple[HubertSoftContent, Path] | None:
    trained_on = ckpt.model.model_config.content_features
    spec = cfg.pretrained.content
    if spec is None:
        if trained_on != BUILTIN_CONTENT:
            raise CheckpointError(f"checkpoint {ckpt.path} was trained on {trained_on!r} content features, not its "
                                  f"own content encoder's: set pretrained.content to '{trained_on}:PATH'")
        return None
    path = parse_spec(spec, "content", HUBERT_SOFT)
    if trained_on != HUBERT_SOFT:
        raise CheckpointError(
            f"pretrained.content is {HUBERT_SOFT}, but checkpoint {ckpt.path} was trained on {trained_on!r} content "
            f"features (model.content_features in its config): its flow has never seen {HUBERT_SOFT} units. Unset "
            f"pretrained.content, or use a checkpoint trained with model.content_features: {HUBERT_SOFT}")
    adapter = HubertSoftContent(load_hubert_soft(path), audio, source=str(path))
    want = ckpt.model.model_config.content_dim
    if adapter.units != want:
        raise CheckpointError(f"{path} makes {adapter.units}-dim units; checkpoint {ckpt.path} takes {want}-dim "
                              "content")
    return adapter, path


def _vocoder(cfg: Config, ckpt: LoadedCheckpoint, audio: AudioConfig) -> tuple[HiFiGANVocoder, Path, Path] | None:
    spec = cfg.pretrained.vocoder
    if spec is None:
        return None
    path = parse_spec(spec, "vocoder", HIFIGAN)
    trained_on = ckpt.model.model_config.mel_features
    if trained_on != HIFIGAN_MEL:
        raise CheckpointError(
            f"pretrained.vocoder is {HIFIGAN}, but checkpoint {ckpt.path} makes {trained_on!r} mels "
            f"(model.mel_features in its config), not HiFi-GAN's log-magnitude Slaney mels. Unset "
            f"pretrained.vocoder, or use a checkpoint trained with model.mel_features: {HIFIGAN_MEL}")
    config = (parse_spec(f"{HIFIGAN}:{cfg.pretrained.vocoder_config}", "vocoder_config", HIFIGAN)
              if cfg.pretrained.vocoder_config else path.with_name("config.json"))
    return HiFiGANVocoder(load_hifigan(path, config), audio, source=str(path)), path, config


def attach_pretrained(cfg: Config, ckpt: LoadedCheckpoint) -> LoadedCheckpoint:
    """``ckpt`` with the configured pretrained components in its model (changed in place), or ``ckpt``
    itself when none is configured (after checking it needs none).

    Raises:
        ConfigError: a ``pretrained`` value is malformed.
        CheckpointError: a pretrained file is missing or does not match its architecture, or the
            checkpoint was trained on other features than the configured (or built-in) ones.
    """
    audio: AudioConfig = ckpt.model.audio_config  # type: ignore[assignment]
    content = _content(cfg, ckpt, audio)
    vocoder = _vocoder(cfg, ckpt, audio)
    if content is None and vocoder is None:
        return ckpt
    identity = hashlib.sha256(ckpt.sha256.encode())
    used: dict[str, str] = {}
    if content is not None:
        setattr(ckpt.model, "content_encoder", content[0])  # noqa: B010 - another class than the field's
        used["content"] = f"{HUBERT_SOFT}:{content[1]}"
        identity.update(f"|content:{HUBERT_SOFT}:{file_sha256(content[1])}".encode())
    if vocoder is not None:
        setattr(ckpt.model, "vocoder", vocoder[0])  # noqa: B010 - another class than the field's
        used["vocoder"] = f"{HIFIGAN}:{vocoder[1]}"
        identity.update(f"|vocoder:{HIFIGAN}:{file_sha256(vocoder[1])}:{file_sha256(vocoder[2])}".encode())
    for role, what in used.items():
        log.info("pretrained %s: %s", role, what)
    ckpt.model.eval()
    return dataclasses.replace(ckpt, sha256=identity.hexdigest(), info={**ckpt.info, "pretrained": used})


def load_configured_checkpoint(cfg: Config, checkpoint: str | Path | None = None) -> LoadedCheckpoint:
    """``checkpoint`` (default: the configured one) on the CPU, with the configured pretrained components
    attached: what export, builds, calibration and the runners all start from."""
    from engine.checkpoint import load_checkpoint

    return attach_pretrained(cfg, load_checkpoint(checkpoint or cfg.checkpoint_path, device="cpu"))
