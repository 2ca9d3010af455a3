"""HuBERT-Soft (van Niekerk et al., 2022): 16 kHz audio -> 256-dim soft speech units every 20 ms.

A re-implementation of the published architecture whose state dict has exactly the published key names
(``feature_extractor.conv0.weight``, ``positional_embedding.conv.weight_g`` / ``weight_v``,
``encoder.layers.N.self_attn.in_proj_weight``, ``proj.weight``, ...), so the released file
(``hubert-soft-0d54a1f4.pt``: a bare state dict saved from DDP, ``module.``-prefixed) loads strictly.
The transformer layers are written out (post-norm, GELU, one fused QKV projection, as
``nn.TransformerEncoderLayer`` computes them) so the graph exports to ONNX as plain ops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

from engine.pretrained.official_state import (
    load_strict,
    normalise_keys,
    read_state_file,
    remove_weight_norm,
    tensor_dict,
)

WHAT = "HuBERT-Soft"
# (kernel, stride) of the seven feature-extractor convs: 400-sample receptive field, 320-sample stride.
CONV_LAYERS = ((10, 5), (3, 2), (3, 2), (3, 2), (3, 2), (2, 2), (2, 2))
HEAD_WIDTH = 64  # the published model's attention head width (768 / 12); not recorded in the file


@dataclass(frozen=True)
class HubertSoftSizes:
    """Sizes of the published model by default; smaller ones describe reduced-width variants."""

    conv_channels: int = 512
    hidden: int = 768
    heads: int = 12
    ffn: int = 3072
    layers: int = 12
    units: int = 256
    pos_kernel: int = 128
    pos_groups: int = 16
    labels: int = 100

    @property
    def stride(self) -> int:
        """Audio samples per unit (320: 20 ms at 16 kHz)."""
        return math.prod(s for _, s in CONV_LAYERS)

    @property
    def receptive_field(self) -> int:
        """Audio samples seen by one unit of the feature extractor (400)."""
        field, jump = 1, 1
        for k, s in CONV_LAYERS:
            field += (k - 1) * jump
            jump *= s
        return field


class FeatureExtractor(nn.Module):
    """Seven strided convs, group norm (one group per channel) after the first: ``[b, 1, s] -> [b, c, t]``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        for i, (k, s) in enumerate(CONV_LAYERS):
            self.add_module(f"conv{i}", nn.Conv1d(1 if i == 0 else channels, channels, k, s, bias=False))
        self.norm0 = nn.GroupNorm(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(len(CONV_LAYERS)):
            conv: nn.Module = getattr(self, f"conv{i}")
            x = F.gelu(self.norm0(conv(x)) if i == 0 else conv(x))
        return x


class FeatureProjection(nn.Module):
    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.projection = nn.Linear(channels, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[b, t, c] -> [b, t, d]``."""
        return self.projection(self.norm(x))


class PositionalConvEmbedding(nn.Module):
    """A grouped conv over time with weight norm over the kernel axis (``dim=2``); its even kernel makes one
    frame too many, which is dropped."""

    def __init__(self, hidden: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.conv = weight_norm(nn.Conv1d(hidden, hidden, kernel, padding=kernel // 2, groups=groups), dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[b, t, d] -> [b, t, d]``."""
        y = self.conv(x.transpose(1, 2))
        return F.gelu(y[:, :, : x.shape[1]]).transpose(1, 2)


class SelfAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameters (fused ``in_proj``)."""

    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not a multiple of {heads} heads")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * hidden, hidden))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * hidden))
        self.out_proj = nn.Linear(hidden, hidden)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[b, t, d] -> [b, t, d]``."""
        b, t, d = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # [b, t, 3d]
        q, k, v = qkv.reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # [b, h, t, dh] each
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d // self.heads)  # [b, h, t, t]
        out = torch.matmul(torch.softmax(scores, dim=-1), v)  # [b, h, t, dh]
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))


class EncoderLayer(nn.Module):
    """Post-norm transformer layer (``nn.TransformerEncoderLayer(norm_first=False, activation="gelu")``)."""

    def __init__(self, hidden: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.self_attn = SelfAttention(hidden, heads)
        self.linear1 = nn.Linear(hidden, ffn)
        self.linear2 = nn.Linear(ffn, hidden)
        self.norm1 = nn.LayerNorm(hidden)
        self.norm2 = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.self_attn(x))
        return self.norm2(x + self.linear2(F.gelu(self.linear1(x))))


class TransformerEncoder(nn.Module):
    def __init__(self, hidden: int, heads: int, ffn: int, n_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(hidden, heads, ffn) for _ in range(n_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class HubertSoft(nn.Module):
    """``units(audio [b, s]) -> [b, s // 320, units]``; ``masked_spec_embed`` and ``label_embedding`` are
    training-only parameters, kept so the published state dict loads strictly."""

    def __init__(self, sizes: HubertSoftSizes | None = None) -> None:
        super().__init__()
        self.sizes = z = sizes or HubertSoftSizes()
        self.feature_extractor = FeatureExtractor(z.conv_channels)
        self.feature_projection = FeatureProjection(z.conv_channels, z.hidden)
        self.positional_embedding = PositionalConvEmbedding(z.hidden, z.pos_kernel, z.pos_groups)
        self.norm = nn.LayerNorm(z.hidden)
        self.encoder = TransformerEncoder(z.hidden, z.heads, z.ffn, z.layers)
        self.proj = nn.Linear(z.hidden, z.units)
        self.masked_spec_embed = nn.Parameter(torch.zeros(z.hidden).uniform_())
        self.label_embedding = nn.Embedding(z.labels, z.units)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Already padded audio ``[b, s] -> [b, t, hidden]``."""
        x = self.feature_extractor(audio.unsqueeze(1))  # [b, c, t]
        x = self.feature_projection(x.transpose(1, 2))  # [b, t, d]
        x = self.norm(x + self.positional_embedding(x))
        return self.encoder(x)

    def units(self, audio: torch.Tensor) -> torch.Tensor:
        """Soft units as the published ``HubertSoft.units``: ``[b, s] -> [b, s // 320, units]``."""
        pad = (self.sizes.receptive_field - self.sizes.stride) // 2
        return self.proj(self.encode(F.pad(audio, (pad, pad))))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.units(audio)


def _infer_sizes(state: dict[str, torch.Tensor]) -> HubertSoftSizes:
    """The sizes a file was saved with, from its tensor shapes (published sizes where a key is absent, so
    the strict check names it); heads from the published head width."""
    d = HubertSoftSizes()

    def dim(key: str, axis: int, default: int) -> int:
        t = state.get(key)
        return int(t.shape[axis]) if t is not None and t.dim() > axis else default

    hidden = dim("feature_projection.projection.weight", 0, d.hidden)
    layers = {k.split(".")[2] for k in state if k.startswith("encoder.layers.") and k.count(".") >= 3}
    per_group = dim("positional_embedding.conv.parametrizations.weight.original1", 1, hidden // d.pos_groups)
    return HubertSoftSizes(
        conv_channels=dim("feature_extractor.conv0.weight", 0, d.conv_channels), hidden=hidden,
        heads=max(1, hidden // HEAD_WIDTH), ffn=dim("encoder.layers.0.linear1.weight", 0, d.ffn),
        layers=len(layers) or d.layers, units=dim("proj.weight", 0, d.units),
        pos_kernel=dim("positional_embedding.conv.parametrizations.weight.original1", 2, d.pos_kernel),
        pos_groups=max(1, hidden // max(1, per_group)), labels=dim("label_embedding.weight", 0, d.labels),
    )


def load_hubert_soft(path: str | Path, sizes: HubertSoftSizes | None = None) -> HubertSoft:
    """Load a HuBERT-Soft checkpoint in the published layout (a state dict, ``module.`` prefix optional, old
    or new weight-norm keys).

    Args:
        path: the ``.pt`` file (e.g. ``hubert-soft-0d54a1f4.pt``).
        sizes: the architecture's sizes; by default read from the file's shapes (the published sizes for
            the published file), with one attention head per 64 channels.

    Returns:
        The model in eval mode, weight norm folded into plain weights.

    Raises:
        CheckpointError: the file is missing, unreadable, or its keys or shapes do not match.
    """
    state = normalise_keys(tensor_dict(read_state_file(path, WHAT), path, WHAT))
    model = HubertSoft(sizes or _infer_sizes(state))
    load_strict(model, state, path, WHAT)
    return remove_weight_norm(model)  # type: ignore[return-value]
