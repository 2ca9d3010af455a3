"""Manifests: every exported model or built engine describes itself in ``<component>.json`` beside it.

An artifact is loaded only when its manifest says it was made from the checkpoint in use, the files it
names are there with the hashes it records, and (TensorRT) it was built for this GPU and TensorRT
version. Anything else is an :class:`~engine.errors.ArtifactError` that names the reason.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.checkpoint import file_sha256
from engine.errors import ArtifactError

MANIFEST_VERSION = 1
# The exported graphs' own version: bumped when export code changes what a checkpoint exports to (the
# vocoder's harmonic bank, an op order), so artifacts exported before are rebuilt, not kept because their
# checkpoint is unchanged. Manifests written before the field existed read as revision 1.
GRAPH_REVISION = 2
# The INT8 recipe's own version (which nodes stay FP32, how activations are quantized): bumped when it
# changes, so INT8 artifacts built before are rebuilt. Revision 2 keeps the vocoder's noise filters FP32.
# INT8 manifests written before the field existed read as revision 1.
QUANTIZATION_REVISION = 2


@dataclass
class Manifest:
    component: str
    backend: str                    # onnx (a plain export) | onnxruntime | tensorrt
    precision: str                  # fp32 | fp16 | int8
    artifact: str                   # file name beside the manifest
    artifact_sha256: str
    checkpoint_sha256: str
    onnx_sha256: str                # the ONNX this artifact is (or was built from)
    opset: int
    inputs: list[dict[str, Any]]    # [{"name", "dims"}]
    outputs: list[dict[str, Any]]
    dynamic_axes: dict[str, dict[str, str]]
    profile_seconds: dict[str, float]
    profile_shapes: dict[str, list[list[int]]] | None = None   # TensorRT: name -> [min, opt, max]
    calibration_sha256: str | None = None
    tensorrt_version: str | None = None
    gpu_name: str | None = None
    compute_capability: str | None = None
    created: str = ""
    quality: dict[str, Any] = field(default_factory=dict)      # parity / SNR figures measured at build
    notes: list[str] = field(default_factory=list)
    format: int = MANIFEST_VERSION
    graph_revision: int = 1         # GRAPH_REVISION of the export it is (or was built from)
    quantization_revision: int = 1  # QUANTIZATION_REVISION of an int8 artifact's recipe (unused otherwise)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def manifest_path(folder: str | Path, component: str) -> Path:
    return Path(folder) / f"{component}.json"


def write_manifest(folder: str | Path, manifest: Manifest) -> Path:
    """Write ``<folder>/<component>.json`` atomically."""
    path = manifest_path(folder, manifest.component)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(manifest.to_json())
    os.replace(tmp, path)
    return path


@functools.cache
def _field_types() -> dict[str, tuple[type, ...]]:
    """Each field's allowed runtime types, from its annotation (``list[dict]`` -> ``list``, ``X | None``)."""
    hints = typing.get_type_hints(Manifest)
    out = {}
    for f in dataclasses.fields(Manifest):
        hint = hints[f.name]
        members = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        out[f.name] = tuple(typing.get_origin(t) or t for t in members)
    return out


def _check_types(m: Manifest) -> None:
    """Raise ``TypeError`` naming the first field whose JSON value is not of the field's type."""
    for name, allowed in _field_types().items():
        value = getattr(m, name)
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
            raise TypeError(f"{name} is {json.dumps(value)[:40]}, not {names}")


def read_manifest(folder: str | Path, component: str) -> Manifest:
    path = manifest_path(folder, component)
    if not path.is_file():
        raise ArtifactError(f"{component}: no manifest at {path}")
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise TypeError(f"a JSON {type(data).__name__}, not an object")
        known = {f.name for f in dataclasses.fields(Manifest)}
        manifest = Manifest(**{k: v for k, v in data.items() if k in known})
        _check_types(manifest)
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as exc:
        raise ArtifactError(f"{component}: manifest {path} is unreadable ({exc})") from exc
    if manifest.format != MANIFEST_VERSION:
        raise ArtifactError(f"{component}: manifest {path} has format {manifest.format}, "
                            f"this version reads {MANIFEST_VERSION}")
    if manifest.component != component:
        raise ArtifactError(f"{component}: manifest {path} describes {manifest.component!r}")
    return manifest


def verify_artifact(folder: str | Path, component: str, checkpoint_sha256: str, *,
                    backends: tuple[str, ...], precision: str | None = None, tensorrt_version: str | None = None,
                    compute_capability: str | None = None) -> tuple[Manifest, Path]:
    """Check one artifact is fresh; return its manifest and the artifact's path. With ``precision``, the
    artifact must be of that precision or FP32 (a build keeps FP32 where the lower precision fails).

    Raises:
        ArtifactError: naming why it is stale or mismatched (checkpoint hash differs, file missing or
            changed, exported by an older graph revision or quantized by an older INT8 recipe, built by
            another backend, precision, TensorRT version or GPU differ).
    """
    folder = Path(folder)
    m = read_manifest(folder, component)
    where = f"{component} ({m.backend}/{m.precision} in {folder})"
    if m.backend not in backends:
        raise ArtifactError(f"{where}: is a {m.backend} artifact, expected {' or '.join(backends)}")
    if precision is not None and m.precision not in (precision, "fp32"):
        raise ArtifactError(f"{where}: is an {m.precision} artifact where {precision} ones belong; rebuild it")
    if m.checkpoint_sha256 != checkpoint_sha256:
        raise ArtifactError(f"{where}: stale: made from checkpoint {m.checkpoint_sha256[:12]}, the checkpoint in use "
                            f"is {checkpoint_sha256[:12]}; rebuild it")
    if m.graph_revision != GRAPH_REVISION:
        raise ArtifactError(f"{where}: stale: exported by graph revision {m.graph_revision}, this version exports "
                            f"revision {GRAPH_REVISION}; rebuild it")
    if m.precision == "int8" and m.quantization_revision != QUANTIZATION_REVISION:
        raise ArtifactError(f"{where}: stale: quantized by INT8 recipe revision {m.quantization_revision}, this "
                            f"version quantizes by revision {QUANTIZATION_REVISION}; rebuild it")
    artifact = folder / m.artifact
    if Path(m.artifact).name != m.artifact:
        raise ArtifactError(f"{where}: manifest names a file outside its folder: {m.artifact!r}")
    if not artifact.is_file():
        raise ArtifactError(f"{where}: {artifact.name} is missing")
    actual = file_sha256(artifact)
    if actual != m.artifact_sha256:
        raise ArtifactError(f"{where}: {artifact.name} does not match its manifest (sha256 {actual[:12]}, "
                            f"manifest says {m.artifact_sha256[:12]}); rebuild it")
    if tensorrt_version is not None and m.tensorrt_version != tensorrt_version:
        raise ArtifactError(f"{where}: built with TensorRT {m.tensorrt_version}, this is {tensorrt_version}")
    if compute_capability is not None and m.compute_capability != compute_capability:
        raise ArtifactError(f"{where}: built for compute capability {m.compute_capability}, "
                            f"this GPU is {compute_capability}")
    return m, artifact


def folder_checkpoint(folder: str | Path, components: tuple[str, ...]) -> str | None:
    """The checkpoint hash the folder's manifests agree on, or None when missing or mixed."""
    hashes = set()
    for c in components:
        try:
            hashes.add(read_manifest(folder, c).checkpoint_sha256)
        except ArtifactError:
            return None
    return hashes.pop() if len(hashes) == 1 else None
