"""Losses: multi-resolution STFT (vocoder) and the VITS KL between posterior and flow prior."""

from __future__ import annotations

import torch
from torch.nn import functional as F

STFT_RESOLUTIONS = ((256, 64), (512, 128), (1024, 256))


def _mag(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, device=x.device)
    spec = torch.stft(x, n_fft, hop, n_fft, window, return_complex=True)
    return spec.abs() + 1e-5


def multi_resolution_stft_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1, averaged over resolutions. ``[b, s]`` each."""
    total = pred.new_zeros(())
    for n_fft, hop in STFT_RESOLUTIONS:
        p, t = _mag(pred, n_fft, hop), _mag(target, n_fft, hop)
        sc = torch.linalg.norm(t - p, dim=(1, 2)) / torch.linalg.norm(t, dim=(1, 2)).clamp_min(1e-5)
        total = total + sc.mean() + F.l1_loss(torch.log(p), torch.log(t))
    return total / len(STFT_RESOLUTIONS)


def kl_loss(z_p: torch.Tensor, logs_q: torch.Tensor, m_p: torch.Tensor, logs_p: torch.Tensor,
            mask: torch.Tensor) -> torch.Tensor:
    """KL(q(z|mel) || p(z|c)) estimated at the posterior sample mapped through the flow (VITS)."""
    kl = logs_p - logs_q - 0.5 + 0.5 * (z_p - m_p) ** 2 * torch.exp(-2.0 * logs_p)
    return torch.sum(kl * mask) / torch.sum(mask).clamp_min(1.0) / z_p.shape[1]
