"""Building blocks shared by the components."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def sequence_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``[b] -> [b, 1, t]`` float mask, 1 inside each sequence."""
    steps = torch.arange(max_len, device=lengths.device)
    return (steps[None, :] < lengths[:, None]).unsqueeze(1).float()


class ChannelNorm(nn.Module):
    """LayerNorm over channels of a ``[b, c, t]`` tensor (per frame, so chunking does not change it)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, channels, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        var = (x - mean).pow(2).mean(dim=1, keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.gamma + self.beta


class ResConvStack(nn.Module):
    """Residual 1-D conv blocks: ``x + conv(act(norm(x)))``, with growing dilation. ``[b, c, t]``."""

    def __init__(self, channels: int, n_layers: int, kernel_size: int = 5, dilation_cycle: int = 1) -> None:
        super().__init__()
        self.norms = nn.ModuleList(ChannelNorm(channels) for _ in range(n_layers))
        self.convs = nn.ModuleList()
        for i in range(n_layers):
            d = 2 ** (i % dilation_cycle) if dilation_cycle > 1 else 1
            self.convs.append(nn.Conv1d(channels, channels, kernel_size, dilation=d,
                                        padding=d * (kernel_size - 1) // 2))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for norm, conv in zip(self.norms, self.convs, strict=True):
            y = conv(F.gelu(norm(x)))
            x = x + (y * mask if mask is not None else y)
        return x


class WN(nn.Module):
    """WaveNet-like gated stack with a per-frame conditioning input (as in VITS). ``[b, h, t]``."""

    def __init__(self, hidden: int, kernel_size: int, n_layers: int, cond_channels: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.n_layers = n_layers
        # One projection of the conditioning for all layers: it is the widest input.
        self.cond = nn.Conv1d(cond_channels, 2 * hidden * n_layers, 1)
        self.in_layers = nn.ModuleList(
            nn.Conv1d(hidden, 2 * hidden, kernel_size, padding=(kernel_size - 1) // 2) for _ in range(n_layers)
        )
        self.res_skip = nn.ModuleList(
            nn.Conv1d(hidden, 2 * hidden if i < n_layers - 1 else hidden, 1) for i in range(n_layers)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        g_all = self.cond(g)  # [b, 2h*L, t]
        out = torch.zeros_like(x)
        h = self.hidden
        for i in range(self.n_layers):
            z = self.in_layers[i](x) + g_all[:, 2 * h * i: 2 * h * (i + 1)]
            acts = torch.tanh(z[:, :h]) * torch.sigmoid(z[:, h:])
            rs = self.res_skip[i](acts)
            if i < self.n_layers - 1:
                x = (x + rs[:, :h]) * mask
                out = out + rs[:, h:]
            else:
                out = out + rs
        return out * mask
