"""Mel projection: flow latent ``[b, 192, t]`` -> log-mel ``[b, 80, t]``."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class MelProjection(nn.Module):
    def __init__(self, *, latent_dim: int, hidden: int, n_mels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(latent_dim, hidden, 5, padding=2)
        self.conv2 = nn.Conv1d(hidden, hidden, 5, padding=2)
        self.out = nn.Conv1d(hidden, n_mels, 1)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv1(latent), 0.1)
        h = h + F.leaky_relu(self.conv2(h), 0.1)
        return self.out(h)
