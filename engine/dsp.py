"""Signal-processing helpers shared by the models, training and evaluation (numpy + torch)."""

from __future__ import annotations

import numpy as np
import torch


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """HTK-style triangular mel filterbank, area-normalised: ``[n_mels, n_fft // 2 + 1]``."""
    fmax = sample_rate / 2 if fmax is None else fmax
    bins = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (bins[None, :] - lower) / (centre - lower)
    down = (upper - bins[None, :]) / (upper - centre)
    fb = np.maximum(0.0, np.minimum(up, down))
    fb *= (2.0 / (upper - lower))
    return fb.astype(np.float32)


def stft_basis(n_fft: int) -> torch.Tensor:
    """Hann-windowed real/imaginary DFT bases as conv1d weights ``[2 * (n_fft // 2 + 1), 1, n_fft]``.

    A strided conv with these weights is an STFT that ONNX and TensorRT both run (neither has a usable
    STFT op for engines).
    """
    n = np.arange(n_fft)
    k = np.arange(n_fft // 2 + 1)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)
    angle = 2 * np.pi * k * n / n_fft
    basis = np.concatenate([np.cos(angle) * window, -np.sin(angle) * window], axis=0)
    return torch.from_numpy(basis[:, None, :].astype(np.float32))


def log_mel(audio: torch.Tensor, basis: torch.Tensor, mel_fb: torch.Tensor, hop: int) -> torch.Tensor:
    """Log-mel spectrogram with exactly ``samples // hop`` frames. ``[b, s] -> [b, n_mels, t]``."""
    n_fft = basis.shape[-1]
    pad = (n_fft - hop) // 2
    x = torch.nn.functional.pad(audio.unsqueeze(1), (pad, n_fft - hop - pad))
    spec = torch.nn.functional.conv1d(x, basis, stride=hop)  # [b, 2f, t]
    re, im = spec.chunk(2, dim=1)
    power = re * re + im * im
    mel = torch.matmul(mel_fb, power)  # [b, n_mels, t]
    return torch.log(torch.clamp(mel, min=1e-5))


def cents(f_est: np.ndarray, f_ref: np.ndarray) -> np.ndarray:
    """Absolute pitch difference in cents where both are voiced (> 0)."""
    both = (f_est > 0) & (f_ref > 0)
    return np.abs(1200.0 * np.log2(f_est[both] / f_ref[both]))
