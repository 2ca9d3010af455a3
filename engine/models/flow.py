"""Conditional normalizing flow decoder (VITS-style), run in reverse at inference.

Forward (training): posterior latent ``z`` -> couplings -> ``z_p``, scored under the conditional prior
``N(mu(c), exp(logs(c)))``. Reverse (inference): ``z_p = mu + exp(logs) * noise * temperature`` -> inverse
couplings -> ``z``. The noise is an input, so every backend gives the same output for the same seed, and
temperature 0 gives the mode of the prior pushed through the flow.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.models.layers import WN, ResConvStack


class ResidualCoupling(nn.Module):
    """Mean-only affine coupling: exactly invertible, volume preserving (log-det 0)."""

    def __init__(self, channels: int, hidden: int, kernel_size: int, n_layers: int, cond_channels: int) -> None:
        super().__init__()
        self.split = channels // 2
        self.pre = nn.Conv1d(self.split, hidden, 1)
        self.enc = WN(hidden, kernel_size, n_layers, cond_channels)
        self.post = nn.Conv1d(hidden, channels - self.split, 1)
        # Zero-initialised last conv: a new coupling starts as the identity.
        nn.init.zeros_(self.post.weight)
        nn.init.zeros_(self.post.bias)  # type: ignore[arg-type]

    def _shift(self, x0: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return self.post(self.enc(self.pre(x0) * mask, mask, g)) * mask

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        x0, x1 = x[:, : self.split], x[:, self.split:]
        return torch.cat([x0, x1 * mask + self._shift(x0, mask, g)], dim=1)

    def inverse(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        x0, x1 = x[:, : self.split], x[:, self.split:]
        return torch.cat([x0, (x1 - self._shift(x0, mask, g)) * mask], dim=1)


class FlowDecoder(nn.Module):
    def __init__(self, *, latent_dim: int, cond_dim: int, hidden: int, kernel_size: int, n_layers: int,
                 n_couplings: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        # The wide conditioning (content + pitch + speaker) is projected once and shared by every layer.
        self.cond_proj = nn.Conv1d(cond_dim, hidden, 1)
        self.couplings = nn.ModuleList(
            ResidualCoupling(latent_dim, hidden, kernel_size, n_layers, hidden) for _ in range(n_couplings)
        )
        self.prior_in = nn.Conv1d(hidden, hidden, 1)
        self.prior_body = ResConvStack(hidden, 3, kernel_size=kernel_size)
        self.prior_out = nn.Conv1d(hidden, 2 * latent_dim, 1)

    def prior(self, cond: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected ``cond [b, hidden, t] -> (mu, logs)``, each ``[b, latent, t]``."""
        h = self.prior_body(self.prior_in(cond) * mask, mask)
        stats = self.prior_out(h) * mask
        mu, logs = stats[:, : self.latent_dim], stats[:, self.latent_dim:]
        return mu, torch.clamp(logs, min=-7.0, max=3.0)

    def forward(self, z: torch.Tensor, mask: torch.Tensor, cond: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training direction. Returns ``(z_p, mu, logs)``; the flow's log-det is 0."""
        cond = self.cond_proj(cond) * mask
        for coupling in self.couplings:
            z = torch.flip(coupling(z, mask, cond), dims=[1])
        mu, logs = self.prior(cond, mask)
        return z, mu, logs

    def to_noise(self, z: torch.Tensor, mask: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Map a latent to its standard-normal noise (exact inverse of :meth:`infer` at temperature 1)."""
        z_p, mu, logs = self.forward(z, mask, cond)
        return (z_p - mu) * torch.exp(-logs) * mask

    def infer(self, noise: torch.Tensor, mask: torch.Tensor, cond: torch.Tensor,
              temperature: torch.Tensor) -> torch.Tensor:
        """Inference direction. ``noise [b, latent, t]``, ``temperature [1]`` -> latent ``[b, latent, t]``."""
        cond = self.cond_proj(cond) * mask
        mu, logs = self.prior(cond, mask)
        z = (mu + torch.exp(logs) * noise * temperature) * mask
        for coupling in reversed(self.couplings):
            z = coupling.inverse(torch.flip(z, dims=[1]), mask, cond)  # type: ignore[operator]
        return z
