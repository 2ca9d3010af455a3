"""Input/output shapes of the five exported components, from the model's own config.

Dims are ints (fixed by the model's sizes) or symbols: ``batch``, ``frames`` and ``samples``. In the
content encoder ``samples`` is free (it makes ``samples // hop`` frames); everywhere else a ``samples``
axis is ``frames * hop``. TensorRT profiles and the export's checks are built from these specs, so no
component size is written down twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.config import AudioConfig, ModelConfig
from engine.models.inference import COMPONENT_IO

BATCH, FRAMES, SAMPLES = "batch", "frames", "samples"
Dim = int | str


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dims: tuple[Dim, ...]

    @property
    def batched(self) -> bool:
        """Whether axis 0 is the batch axis (every tensor but the flow's ``temperature``)."""
        return bool(self.dims) and self.dims[0] == BATCH

    def dynamic_axes(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.dims) if isinstance(d, str)}

    def shape(self, batch: int, frames: int, hop: int) -> tuple[int, ...]:
        """The concrete shape for ``batch`` examples of ``frames`` frames."""
        sizes = {BATCH: batch, FRAMES: frames, SAMPLES: frames * hop}
        return tuple(sizes[d] if isinstance(d, str) else d for d in self.dims)


@dataclass(frozen=True)
class ComponentSpec:
    component: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def input(self, name: str) -> TensorSpec:
        return next(s for s in self.inputs if s.name == name)


def component_specs(model: ModelConfig, audio: AudioConfig) -> dict[str, ComponentSpec]:
    """Specs of every component, in pipeline order, named as in ``COMPONENT_IO``."""
    b, t, s = BATCH, FRAMES, SAMPLES
    shapes: dict[str, tuple[tuple[tuple[Dim, ...], ...], tuple[tuple[Dim, ...], ...]]] = {
        "content_encoder": (((b, s),), ((b, model.content_dim, t),)),
        "pitch_encoder": (((b, t), (b, t)), ((b, model.pitch_dim, t),)),
        "flow_decoder": (((b, model.latent_dim, t), (b, 1, t), (b, model.conditioning_dim, t), (1,)),
                         ((b, model.latent_dim, t),)),
        "mel_projection": (((b, model.latent_dim, t),), ((b, audio.n_mels, t),)),
        "vocoder": (((b, audio.n_mels, t), (b, t), (b, 1), (b, 1, s)), ((b, 1, s),)),
    }
    specs = {}
    for component, (in_names, out_names) in COMPONENT_IO.items():
        ins, outs = shapes[component]
        specs[component] = ComponentSpec(
            component,
            tuple(TensorSpec(n, d) for n, d in zip(in_names, ins, strict=True)),
            tuple(TensorSpec(n, d) for n, d in zip(out_names, outs, strict=True)),
        )
    return specs


def _f0_contour(rng: np.random.Generator, batch: int, frames: int) -> np.ndarray:
    """A sung-like F0 track: a slow glide with vibrato and a few unvoiced gaps (Hz, 0 = unvoiced)."""
    t = np.arange(frames) / 100.0
    base = rng.uniform(110.0, 440.0, size=(batch, 1))
    f0 = base * 2.0 ** (0.25 * np.sin(2 * np.pi * 0.3 * t) + 0.02 * np.sin(2 * np.pi * 5.5 * t))
    gaps = rng.random((batch, frames)) < 0.1
    return np.where(gaps, 0.0, f0).astype(np.float32)


def probe_inputs(spec: ComponentSpec, batch: int, frames: int, hop: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs to compare one backend with another on (export checks): typical ranges, fixed seed.

    Not calibration data: only two backends computing the same function are compared on them.
    """
    rng = np.random.default_rng([seed, batch, frames])
    f0 = _f0_contour(rng, batch, frames)
    out: dict[str, np.ndarray] = {}
    for ts in spec.inputs:
        shape = ts.shape(batch, frames, hop)
        if ts.name == "f0":
            out[ts.name] = f0
        elif ts.name == "voiced":
            out[ts.name] = (f0 > 0).astype(np.float32)
        elif ts.name == "mask":
            out[ts.name] = np.ones(shape, np.float32)
        elif ts.name == "temperature":
            out[ts.name] = np.full(shape, 0.7, np.float32)
        elif ts.name == "phase0":
            out[ts.name] = rng.random(shape, dtype=np.float32)
        elif ts.name == "audio":
            out[ts.name] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
        elif ts.name == "mel":
            out[ts.name] = (rng.standard_normal(shape) - 4.0).astype(np.float32)
        else:
            out[ts.name] = rng.standard_normal(shape, dtype=np.float32)
    return out
