"""Posterior encoder (training only): target log-mel -> latent distribution ``q(z | mel)``."""

from __future__ import annotations

import torch
from torch import nn

from engine.models.layers import WN


class PosteriorEncoder(nn.Module):
    def __init__(self, *, n_mels: int, latent_dim: int, hidden: int, n_layers: int, cond_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.pre = nn.Conv1d(n_mels, hidden, 1)
        self.enc = WN(hidden, 5, n_layers, cond_dim)
        self.proj = nn.Conv1d(hidden, 2 * latent_dim, 1)

    def forward(self, mel: torch.Tensor, mask: torch.Tensor, speaker: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``mel [b, m, t]``, ``speaker [b, s, t]`` -> ``(z, mu, logs)`` each ``[b, latent, t]``."""
        h = self.enc(self.pre(mel) * mask, mask, speaker)
        stats = self.proj(h) * mask
        mu, logs = stats[:, : self.latent_dim], stats[:, self.latent_dim:]
        z = (mu + torch.randn_like(mu) * torch.exp(logs)) * mask
        return z, mu, logs
