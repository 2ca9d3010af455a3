"""Typed configuration: ``configs/default.yaml`` -> dataclasses, with environment overrides.

Environment variables ``AUTOVOICE__SECTION__KEY=value`` override single keys (values are parsed as YAML
scalars); ``AUTOVOICE_CONFIG`` names another YAML file to load instead of the default one, and
``AUTOVOICE_DATA_DIR`` overrides ``paths.data_dir``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "default.yaml"
ENV_PREFIX = "AUTOVOICE__"
DEFAULT_ENGINE_SUBDIR = Path("models/engines/voice_conversion")


class ConfigError(ValueError):
    """A configuration file or override that cannot be used."""


@dataclass(frozen=True)
class AudioConfig:
    sample_rate: int = 16000
    hop_length: int = 160
    n_fft: int = 1024
    n_mels: int = 80
    f0_min: float = 50.0
    f0_max: float = 1100.0

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length


@dataclass(frozen=True)
class ModelConfig:
    content_dim: int = 256
    pitch_dim: int = 192
    speaker_dim: int = 256
    latent_dim: int = 192
    n_phones: int = 48
    content_hidden: int = 256
    content_layers: int = 5
    content_fft: int = 512
    content_mels: int = 80
    pitch_hidden: int = 192
    flow_hidden: int = 96
    flow_layers: int = 2
    flow_couplings: int = 4
    flow_kernel: int = 5
    mel_hidden: int = 256
    vocoder_hidden: int = 192
    vocoder_layers: int = 4
    vocoder_harmonics: int = 64
    vocoder_noise_bands: int = 16
    posterior_hidden: int = 96
    posterior_layers: int = 4
    # What the flow was trained on: the content features it is conditioned on, and the mel definition the
    # mel projection produces. Recorded in every checkpoint; pretrained components are checked against them.
    content_features: str = "autovoice-ppg"
    mel_features: str = "autovoice"

    @property
    def conditioning_dim(self) -> int:
        """Flow conditioning: content + pitch + speaker, stacked per frame."""
        return self.content_dim + self.pitch_dim + self.speaker_dim


@dataclass(frozen=True)
class InferenceConfig:
    temperature: float = 0.0
    seed: int = 0
    f0_method: str = "parselmouth"
    chunk_seconds: float = 8.0
    overlap_seconds: float = 0.5
    silence_db: float = -40.0
    max_input_seconds: float = 1200.0


@dataclass(frozen=True)
class RuntimeConfig:
    threads: int = 0
    device: str = "cpu"
    spin: bool = True  # ONNX Runtime threads spin within a run (see engine.backends.onnxruntime_backend)


@dataclass(frozen=True)
class PathsConfig:
    data_dir: str = "./data"
    checkpoint: str = "models/demo/autovoice.pt"
    builtin_voices: str = "models/demo/voices"
    tensorrt_engines: str | None = None


@dataclass(frozen=True)
class PretrainedConfig:
    """Published networks to run in place of the checkpoint's own components (see ``engine.pretrained``).

    ``content``: ``"hubert-soft:PATH"``; ``vocoder``: ``"hifigan:PATH"`` with the generator's
    ``config.json`` beside it or at ``vocoder_config``. Relative paths are taken from the project root.
    """

    content: str | None = None
    vocoder: str | None = None
    vocoder_config: str | None = None


@dataclass(frozen=True)
class VoiceConversionEngines:
    engine_dir: str | None = None


@dataclass(frozen=True)
class ProfileSeconds:
    min: float = 0.5
    opt: float = 4.0
    max: float = 8.0


@dataclass(frozen=True)
class TensorRTConfig:
    voice_conversion: VoiceConversionEngines = field(default_factory=VoiceConversionEngines)
    workspace_mb: int = 2048
    profile_seconds: ProfileSeconds = field(default_factory=ProfileSeconds)


@dataclass(frozen=True)
class QuantizationConfig:
    max_f0_error_cents: float = 10.0
    max_mel_distance_db: float = 1.5
    crop_seconds: float = 2.0


@dataclass(frozen=True)
class JobsConfig:
    retention_seconds: int = 86400
    max_blob_mb: int = 200
    max_queue_length: int = 200
    convert_timeout: int = 3600
    build_timeout: int = 7200
    calibrate_timeout: int = 3600
    voice_timeout: int = 600


@dataclass(frozen=True)
class Config:
    audio: AudioConfig = field(default_factory=AudioConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    pretrained: PretrainedConfig = field(default_factory=PretrainedConfig)
    tensorrt: TensorRTConfig = field(default_factory=TensorRTConfig)
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)
    jobs: JobsConfig = field(default_factory=JobsConfig)

    @property
    def data_dir(self) -> Path:
        return _project_path(self.paths.data_dir, base=Path.cwd())

    @property
    def checkpoint_path(self) -> Path:
        return _project_path(self.paths.checkpoint)

    @property
    def builtin_voices_dir(self) -> Path:
        return _project_path(self.paths.builtin_voices)

    @property
    def voices_dir(self) -> Path:
        return self.data_dir / "voices"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _project_path(value: str, base: Path = PROJECT_ROOT) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else (base / path).resolve()


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build a (nested) frozen dataclass from a dict, refusing unknown keys by name."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key(s) {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        f = known[name]
        sub = f.default_factory if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
        if sub is not None and dataclasses.is_dataclass(sub):
            kwargs[name] = _build(sub, value, f"{where}.{name}".lstrip("."))  # type: ignore[arg-type]
        elif f.type == "bool" and not isinstance(value, bool):
            raise ConfigError(f"{where}.{name}".lstrip(".") + f": expected true or false, got {value!r}")
        else:
            kwargs[name] = value
    return cls(**kwargs)


def _apply_env(data: dict[str, Any], environ: dict[str, str]) -> None:
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in key[len(ENV_PREFIX):].split("__") if p]
        if not parts:
            continue
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{key}: {part} is not a section")
            node = child
        node[parts[-1]] = yaml.safe_load(raw) if raw != "" else None
    if environ.get("AUTOVOICE_DATA_DIR"):
        data.setdefault("paths", {})["data_dir"] = environ["AUTOVOICE_DATA_DIR"]


def load_config(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Load the configuration.

    Args:
        path: YAML file; defaults to ``$AUTOVOICE_CONFIG`` or ``configs/default.yaml``.
        environ: environment to read overrides from (defaults to ``os.environ``).

    Returns:
        The frozen :class:`Config`.

    Raises:
        ConfigError: the file is missing or malformed, or a key is unknown.
    """
    environ = dict(os.environ if environ is None else environ)
    path = Path(path or environ.get("AUTOVOICE_CONFIG") or DEFAULT_CONFIG)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    _apply_env(data, environ)
    return _build(Config, data, "")


def resolve_engine_dir(cfg: Config, override: str | Path | None = None) -> Path:
    """Where this host's engines live.

    Order: ``override`` (``--engine-dir``), ``tensorrt.voice_conversion.engine_dir``,
    ``paths.tensorrt_engines``, then ``<data_dir>/models/engines/voice_conversion``. A relative
    ``--engine-dir`` is taken from the working directory, like any path typed on a command line; relative
    paths in the config are taken from the data directory. A warning names the chosen directory when it
    does not exist.
    """
    candidates: list[tuple[str, str | Path | None]] = [
        ("--engine-dir", override),
        ("tensorrt.voice_conversion.engine_dir", cfg.tensorrt.voice_conversion.engine_dir),
        ("paths.tensorrt_engines", cfg.paths.tensorrt_engines),
        ("default", DEFAULT_ENGINE_SUBDIR),
    ]
    source, chosen = next((s, c) for s, c in candidates if c)
    path = Path(os.path.expanduser(str(chosen)))
    if not path.is_absolute():
        path = (Path.cwd() if source == "--engine-dir" else cfg.data_dir) / path
    if not path.exists():
        log.warning("engine directory %s (from %s) does not exist", path, source)
    return path
