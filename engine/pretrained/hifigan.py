"""HiFi-GAN generator (Kong et al., 2020): log-mel ``[b, num_mels, t]`` -> waveform ``[b, 1, t * hop]``.

A re-implementation of the published generator (V1/V2/V3 come from its ``config.json``: upsample rates and
kernels, initial channels, ResBlock ``"1"`` or ``"2"`` with its kernel sizes and dilations) whose state
dict has exactly the published key names (``conv_pre``, ``ups.N``, ``resblocks.N.convs1.M`` /
``convs2.M`` or ``convs.M``, ``conv_post``, each weight-normed). The published training script saves
``{"generator": state_dict}`` and reads the ``config.json`` beside the checkpoint; so does the loader.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

from engine.errors import CheckpointError
from engine.pretrained.official_state import (
    load_strict,
    normalise_keys,
    read_state_file,
    remove_weight_norm,
    tensor_dict,
)

WHAT = "HiFi-GAN generator"
LRELU_SLOPE = 0.1
FINAL_LRELU_SLOPE = 0.01  # the published generator's last activation uses leaky_relu's default slope


@dataclass(frozen=True)
class HiFiGANConfig:
    """The generator and feature fields of a published ``config.json`` (training-only fields are ignored)."""

    resblock: str
    upsample_rates: tuple[int, ...]
    upsample_kernel_sizes: tuple[int, ...]
    upsample_initial_channel: int
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    num_mels: int = 80
    sampling_rate: int = 22050
    hop_size: int = 256
    n_fft: int = 1024
    win_size: int = 1024
    fmin: float = 0.0
    fmax: float | None = 8000.0

    @property
    def upsampling(self) -> int:
        """Output samples per input frame: the product of the upsample rates."""
        return math.prod(self.upsample_rates)

    def problems(self) -> list[str]:
        """What makes this config unusable for the generator (empty when it is usable)."""
        out = []
        if self.resblock not in ("1", "2"):
            out.append(f"resblock is {self.resblock!r}, not '1' or '2'")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes) or not self.upsample_rates:
            out.append("upsample_rates and upsample_kernel_sizes differ in length or are empty")
        if any((k - u) % 2 for u, k in zip(self.upsample_rates, self.upsample_kernel_sizes, strict=False)):
            out.append("an upsample kernel minus its rate is odd (the output would not be t * hop long)")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes) or not self.resblock_kernel_sizes:
            out.append("resblock_kernel_sizes and resblock_dilation_sizes differ in length or are empty")
        want = 3 if self.resblock == "1" else 2
        if any(len(d) != want for d in self.resblock_dilation_sizes):
            out.append(f"ResBlock{self.resblock} takes {want} dilations per kernel")
        if self.upsample_initial_channel % (2 ** len(self.upsample_rates)):
            out.append("upsample_initial_channel does not halve once per upsampling")
        if self.upsampling != self.hop_size:
            out.append(f"the upsample rates multiply to {self.upsampling}, not hop_size {self.hop_size}")
        return out


def read_hifigan_config(path: str | Path) -> HiFiGANConfig:
    """Parse a published HiFi-GAN ``config.json``.

    Raises:
        CheckpointError: the file is missing, not JSON, lacks a generator field, or describes a generator
            that cannot be built.
    """
    path = Path(path)
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise CheckpointError(f"no HiFi-GAN config at {path} (the published layout keeps config.json beside "
                              "the generator checkpoint)") from exc
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read HiFi-GAN config {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise CheckpointError(f"HiFi-GAN config {path} is not a JSON object")
    known = {f.name: f for f in fields(HiFiGANConfig)}
    required = [n for n, f in known.items() if f.default is MISSING]  # the generator's own fields
    missing = [n for n in required if n not in raw]
    if missing:
        raise CheckpointError(f"HiFi-GAN config {path} lacks {', '.join(missing)}")
    try:
        cfg = HiFiGANConfig(
            resblock=str(raw["resblock"]),
            upsample_rates=tuple(int(v) for v in raw["upsample_rates"]),
            upsample_kernel_sizes=tuple(int(v) for v in raw["upsample_kernel_sizes"]),
            upsample_initial_channel=int(raw["upsample_initial_channel"]),
            resblock_kernel_sizes=tuple(int(v) for v in raw["resblock_kernel_sizes"]),
            resblock_dilation_sizes=tuple(tuple(int(d) for d in ds) for ds in raw["resblock_dilation_sizes"]),
            **{n: raw[n] for n in known if n not in required and n in raw},
        )
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"HiFi-GAN config {path} has a malformed field: {exc}") from exc
    problems = cfg.problems()
    if problems:
        raise CheckpointError(f"HiFi-GAN config {path}: {'; '.join(problems)}")
    return cfg


def _padding(kernel: int, dilation: int) -> int:
    return (kernel * dilation - dilation) // 2


def _conv(channels: int, kernel: int, dilation: int) -> nn.Module:
    return weight_norm(nn.Conv1d(channels, channels, kernel, 1, dilation=dilation, padding=_padding(kernel, dilation)))


class ResBlock1(nn.Module):
    """Three (dilated conv, conv) pairs, each a residual step."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(_conv(channels, kernel, d) for d in dilations)
        self.convs2 = nn.ModuleList(_conv(channels, kernel, 1) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class ResBlock2(nn.Module):
    """Two dilated convs, each a residual step (the lighter V3 block)."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(_conv(channels, kernel, d) for d in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c in self.convs:
            x = x + c(F.leaky_relu(x, LRELU_SLOPE))
        return x


class HiFiGANGenerator(nn.Module):
    def __init__(self, cfg: HiFiGANConfig) -> None:
        super().__init__()
        self.config = cfg
        self.num_kernels = len(cfg.resblock_kernel_sizes)
        ch = cfg.upsample_initial_channel
        self.conv_pre = weight_norm(nn.Conv1d(cfg.num_mels, ch, 7, 1, padding=3))
        self.ups = nn.ModuleList(
            weight_norm(nn.ConvTranspose1d(ch // 2 ** i, ch // 2 ** (i + 1), k, u, padding=(k - u) // 2))
            for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes, strict=True))
        )
        block = ResBlock1 if cfg.resblock == "1" else ResBlock2
        self.resblocks = nn.ModuleList(
            block(ch // 2 ** (i + 1), k, tuple(d))
            for i in range(len(self.ups))
            for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes, strict=True)
        )
        self.conv_post = weight_norm(nn.Conv1d(ch // 2 ** len(self.ups), 1, 7, 1, padding=3))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """``mel [b, num_mels, t] -> waveform [b, 1, t * hop]`` in [-1, 1]."""
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.num_kernels:(i + 1) * self.num_kernels]
            x = sum((b(x) for b in blocks), torch.zeros_like(x)) / self.num_kernels
        return torch.tanh(self.conv_post(F.leaky_relu(x, FINAL_LRELU_SLOPE)))


def load_hifigan(generator_path: str | Path, config_path: str | Path | None = None) -> HiFiGANGenerator:
    """Load a HiFi-GAN generator in the published layout: ``{"generator": state_dict}`` (a bare state dict is
    accepted too; ``module.`` prefix optional; old or new weight-norm keys) and its ``config.json``.

    Args:
        generator_path: the generator checkpoint (e.g. ``g_02500000``).
        config_path: its config; by default ``config.json`` beside the checkpoint.

    Returns:
        The generator in eval mode, weight norm folded into plain weights.

    Raises:
        CheckpointError: a file is missing or unreadable, or the keys or shapes do not match the config.
    """
    generator_path = Path(generator_path)
    cfg = read_hifigan_config(config_path or generator_path.with_name("config.json"))
    obj = read_state_file(generator_path, WHAT)
    if isinstance(obj, dict) and "generator" in obj:
        obj = obj["generator"]
    state = normalise_keys(tensor_dict(obj, generator_path, WHAT))
    model = HiFiGANGenerator(cfg)
    load_strict(model, state, generator_path, WHAT)
    return remove_weight_norm(model)  # type: ignore[return-value]
