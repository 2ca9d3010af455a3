"""Pitch encoder: F0 in Hz and a voiced mask -> pitch features ``[b, 192, t]``."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

F0_REFERENCE_HZ = 220.0
N_OCTAVE_HARMONICS = 4  # sin/cos of log2-F0 at 1, 2, 4, 8 cycles per octave: sub-semitone resolution


class PitchEncoder(nn.Module):
    freqs: torch.Tensor

    def __init__(self, *, hidden: int, out_dim: int) -> None:
        super().__init__()
        in_ch = 2 + 2 * N_OCTAVE_HARMONICS
        self.register_buffer("freqs", 2.0 ** torch.arange(N_OCTAVE_HARMONICS).float() * 2 * math.pi,
                             persistent=False)
        self.conv1 = nn.Conv1d(in_ch, hidden, 3, padding=1)
        self.conv2 = nn.Conv1d(hidden, hidden, 3, padding=1)
        self.out = nn.Conv1d(hidden, out_dim, 1)

    def forward(self, f0: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
        """``f0 [b, t]`` (Hz, 0 where unvoiced), ``voiced [b, t]`` -> ``[b, out_dim, t]``."""
        lf0 = torch.log2(torch.clamp(f0, min=1.0) / F0_REFERENCE_HZ) * voiced  # octaves from A3
        angles = lf0.unsqueeze(1) * self.freqs[None, :, None]  # [b, k, t]
        v = voiced.unsqueeze(1)
        x = torch.cat([lf0.unsqueeze(1), v, torch.sin(angles) * v, torch.cos(angles) * v], dim=1)
        h = F.leaky_relu(self.conv1(x), 0.1)
        h = F.leaky_relu(self.conv2(h), 0.1)
        return self.out(h)
