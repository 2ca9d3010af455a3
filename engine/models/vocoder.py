"""Harmonic-plus-noise (DDSP) source-filter vocoder: log-mel + F0 -> waveform.

The pitch of the output is the F0 given, exactly: a bank of harmonics is driven by a phase accumulated
from F0 (per frame, in FP32, wrapped), and a conv net reads the mel to set each harmonic's amplitude and
the gains of a filtered-noise branch. The noise and the starting phase are inputs, so the output is
deterministic for a seed and continuous across chunks (the pipeline passes each chunk's start phase).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from engine.models.layers import ResConvStack
from engine.models.pitch import F0_REFERENCE_HZ

NOISE_FILTER_TAPS = 127
NOISE_BIAS = -5.0  # noise starts ~35 dB below the harmonics (as DDSP does)
HARMONIC_GROUP = 8  # harmonics per inner group in harmonic_sum: 8 x 8 = 64


def exp_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """DDSP's positive squashing, ``2 * sigmoid(x) ** ln(10) + 1e-7``: bounded, and its gradient never dies
    the way softplus's does for a large negative input."""
    return 2.0 * torch.pow(torch.sigmoid(x), math.log(10.0)) + 1e-7


def noise_filterbank(sample_rate: int, n_bands: int, taps: int = NOISE_FILTER_TAPS) -> np.ndarray:
    """Windowed-sinc band-pass FIRs on a mel-like spacing: ``[n_bands, 1, taps]``."""
    from engine.dsp import hz_to_mel, mel_to_hz

    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_bands + 1)) / sample_rate
    n = np.arange(taps) - (taps - 1) / 2
    window = np.hamming(taps)
    filters = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        h = (2 * hi * np.sinc(2 * hi * n) - 2 * lo * np.sinc(2 * lo * n)) * window
        filters.append(h)
    return np.asarray(filters, dtype=np.float32)[:, None, :]


def upsample_frames(x: torch.Tensor, hop: int) -> torch.Tensor:
    """Linear interpolation from frame rate to sample rate: ``[b, c, t] -> [b, c, t * hop]``."""
    nxt = torch.cat([x[:, :, 1:], x[:, :, -1:]], dim=2)
    ramp = torch.arange(hop, dtype=x.dtype, device=x.device) / hop  # [hop]
    y = x.unsqueeze(-1) + (nxt - x).unsqueeze(-1) * ramp  # [b, c, t, hop]
    return y.flatten(2)


def harmonic_phase(f0: torch.Tensor, phase0: torch.Tensor, hop: int, sample_rate: int) -> torch.Tensor:
    """Instantaneous phase in cycles, wrapped to [0, 1): ``f0 [b, t]``, ``phase0 [b, 1]`` -> ``[b, t * hop]``.

    Accumulated per frame: the within-frame ramp is summed over ``hop`` samples and each frame's total is
    wrapped before the sum over frames, so the error stays at FP32 resolution of a few cycles, not of the
    whole file's cycle count.
    """
    # Hold F0 within a frame where either end is unvoiced: no glide from or to 0 Hz.
    nxt = torch.cat([f0[:, 1:], f0[:, -1:]], dim=1)
    both = (f0 > 0) & (nxt > 0)
    nxt = torch.where(both, nxt, f0)
    ramp = torch.arange(hop, dtype=f0.dtype, device=f0.device) / hop
    inc = (f0.unsqueeze(-1) + (nxt - f0).unsqueeze(-1) * ramp) / sample_rate  # [b, t, hop] cycles/sample
    within = torch.cumsum(inc, dim=2) - inc  # phase at each sample relative to the frame start
    total = within[:, :, -1] + inc[:, :, -1]  # [b, t]
    total = total - torch.floor(total)
    start = torch.cumsum(total, dim=1) - total + phase0  # [b, t]
    start = start - torch.floor(start)
    phase = start.unsqueeze(-1) + within
    phase = phase - torch.floor(phase)
    return phase.flatten(1)


def _next_frame(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """``x`` shifted one frame earlier along its frame axis ``dim``: frame ``i`` holds frame ``i + 1``'s values
    (the last repeats)."""
    n = x.shape[dim]
    return torch.cat([x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)], dim=dim)


def angle_multiples(cos1: torch.Tensor, sin1: torch.Tensor, n: int, first: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos`` and ``sin`` of ``(first + j) a`` for ``j = 0..n-1``, stacked on dim 2, from ``cos a`` and
    ``sin a`` (size 1 on dim 2; ``first`` is 0 or 1). By doubling: the multiples held so far times
    ``e^{i L a}`` are the next ``L``, and ``e^{2 i L a}`` is a square, so ``n`` multiples take ``log2 n``
    complex products and no trigonometric function."""
    if first == 0:
        c, s = torch.cat([torch.ones_like(cos1), cos1], dim=2), torch.cat([torch.zeros_like(sin1), sin1], dim=2)
        step_c, step_s = cos1 * cos1 - sin1 * sin1, 2.0 * sin1 * cos1
    elif first == 1:
        c, s, step_c, step_s = cos1, sin1, cos1, sin1
    else:
        raise ValueError(f"the first multiple must be 0 or 1, not {first}")
    while c.shape[2] < n:
        c, s = torch.cat([c, c * step_c - s * step_s], dim=2), torch.cat([s, s * step_c + c * step_s], dim=2)
        step_c, step_s = step_c * step_c - step_s * step_s, 2.0 * step_s * step_c
    return c[:, :, :n], s[:, :, :n]


def harmonic_sum(phase: torch.Tensor, amps: torch.Tensor, hop: int, group: int = HARMONIC_GROUP) -> torch.Tensor:
    """``sum_k A_k(n) sin(2 pi k phase(n))`` for ``k = 1..K``, with the amplitudes ``amps [b, K, t]``
    interpolated linearly within each frame: ``phase [b, t * hop]`` cycles -> ``[b, t * hop]``.

    The same sum as multiplying ``sin(2 pi k phase)`` by :func:`upsample_frames` of ``amps`` and adding over
    ``k``, with far less work per sample: ``k = group * m + r`` splits every harmonic by the angle sum
    ``sin(a + b) = sin a cos b + cos a sin b`` into ``K / group`` "outer" and ``group`` "inner" multiples of
    the phase. A sample takes four sines (of the phase and of ``group`` times it); every multiple follows
    from those by complex products (:func:`angle_multiples`). The sums over the inner multiples against
    each frame's amplitudes (and their change to the next frame, for the interpolation) are one batched
    matmul per frame instead of an interpolated ``[K, samples]`` tensor. Tensors are laid out
    ``[b, t, channel, hop]``, so every elementwise op runs along a frame's contiguous samples.
    """
    b, k, t = amps.shape
    if k % group:
        raise ValueError(f"{k} harmonics do not split into groups of {group}")
    outer_n = k // group
    dtype, device = phase.dtype, phase.device
    # One Sin for the four base angles: [sin, cos] of the phase and of group x the phase (cos: a shifted sin).
    radians = (2 * math.pi) * torch.tensor([1.0, 1.0, group, group], dtype=dtype, device=device)
    shift = (math.pi / 2) * torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=dtype, device=device)
    base = torch.sin(radians[:, None] * phase.reshape(b, t, 1, hop) + shift[:, None])  # [b, t, 4, hop]
    inner_cos, inner_sin = angle_multiples(base[:, :, 1:2], base[:, :, 0:1], group, first=1)  # r = 1..group
    outer_cos, outer_sin = angle_multiples(base[:, :, 3:4], base[:, :, 2:3], outer_n, first=0)  # group x m
    ramp = torch.arange(hop, dtype=dtype, device=device) / hop
    inner = torch.cat([inner_sin, inner_cos], dim=2)  # [b, t, 2g, hop]
    weighted = torch.cat([inner, inner * ramp], dim=2)  # [b, t, 4g, hop]
    # Per frame, [2m, 4g]: P_m = sum_r A[m, r] cos_r and Q_m = sum_r A[m, r] sin_r, where A moves linearly
    # from this frame's amplitudes to the next's (harmonic group * m + r + 1 is amps[:, group * m + r]).
    a = amps.transpose(1, 2).reshape(b, t, outer_n, group)  # [b, t, m, g]
    zero = torch.zeros_like(a)
    step = _next_frame(a) - a
    block = torch.cat([torch.cat([zero, a, zero, step], dim=-1),   # P: weights of [sin_r, cos_r, ramp x ...]
                       torch.cat([a, zero, step, zero], dim=-1)], dim=2)  # Q
    pq = torch.matmul(block, weighted)  # [b, t, 2m, hop]
    out = (torch.cat([outer_sin, outer_cos], dim=2) * pq).sum(dim=2)  # sin(outer) P + cos(outer) Q
    return out.reshape(b, t * hop)


def frame_weighted_sum(signals: torch.Tensor, weights: torch.Tensor, hop: int) -> torch.Tensor:
    """``sum_c signals[c] * upsample_frames(weights)[c]``: ``signals [b, c, t * hop]``, frame-rate
    ``weights [b, c, t]`` -> ``[b, t * hop]``: a frame's own weights, plus the ramp times their change to the
    next frame's, each summed over ``c`` without an interpolated ``[b, c, t * hop]`` weight tensor."""
    b, c, t = weights.shape
    per_frame = signals.reshape(b, c, t, hop)
    w = weights.unsqueeze(-1)  # [b, c, t, 1]
    step = _next_frame(w, dim=2) - w
    ramp = torch.arange(hop, dtype=weights.dtype, device=weights.device) / hop
    return ((per_frame * w).sum(dim=1) + (per_frame * step).sum(dim=1) * ramp).reshape(b, t * hop)


def frame_start_phases(f0: np.ndarray, hop: int, sample_rate: int) -> np.ndarray:
    """Phase (cycles, in [0, 1)) at the start of every frame of a whole F0 track, in float64.

    The same accumulation as :func:`harmonic_phase`: a chunk that starts at frame ``i`` and is given
    ``phase0 = frame_start_phases(f0, ...)[i]`` continues the harmonics of the chunk before it.
    """
    f0 = np.asarray(f0, dtype=np.float64)
    nxt = np.concatenate([f0[1:], f0[-1:]])
    nxt = np.where((f0 > 0) & (nxt > 0), nxt, f0)
    # Sum of the linear ramp over one frame: hop * f0 + (nxt - f0) * (hop - 1) / 2 samples' worth.
    total = (hop * f0 + (nxt - f0) * (hop - 1) / 2.0) / sample_rate
    starts = np.concatenate([[0.0], np.cumsum(total)[:-1]])
    return starts % 1.0


class HarmonicNoiseVocoder(nn.Module):
    harmonic_numbers: torch.Tensor
    noise_filters: torch.Tensor

    def __init__(self, *, sample_rate: int, hop_length: int, n_mels: int, hidden: int, n_layers: int,
                 n_harmonics: int, n_noise_bands: int) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.hop_length = hop_length
        self.n_harmonics = n_harmonics
        self.register_buffer("harmonic_numbers", torch.arange(1, n_harmonics + 1).float(), persistent=False)
        self.register_buffer("noise_filters", torch.from_numpy(noise_filterbank(sample_rate, n_noise_bands)),
                             persistent=False)
        self.pre = nn.Conv1d(n_mels + 2, hidden, 5, padding=2)
        self.body = ResConvStack(hidden, n_layers, kernel_size=5, dilation_cycle=2)
        # Channel 0: overall harmonic amplitude; the rest: the distribution over harmonics (softmax).
        self.harmonic_head = nn.Conv1d(hidden, n_harmonics + 1, 1)
        self.noise_head = nn.Conv1d(hidden, n_noise_bands, 1)
        # Start near a voice: output level ~0.1, harmonics falling ~2 dB each, small random deviations.
        with torch.no_grad():
            self.harmonic_head.weight.mul_(0.1)
            self.harmonic_head.bias.copy_(  # type: ignore[union-attr]
                torch.cat([torch.tensor([-1.0]), -0.25 * torch.arange(n_harmonics).float()]))
            self.noise_head.weight.mul_(0.1)

    def controls(self, mel: torch.Tensor, f0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame-rate synthesis controls: harmonic amplitudes ``[b, k, t]`` and noise gains ``[b, n, t]``."""
        voiced = (f0 > 0).to(mel.dtype)
        lf0 = torch.log2(torch.clamp(f0, min=1.0) / F0_REFERENCE_HZ) * voiced
        h = self.body(self.pre(torch.cat([mel, lf0.unsqueeze(1), voiced.unsqueeze(1)], dim=1)))
        head = self.harmonic_head(h)
        loudness = exp_sigmoid(head[:, :1])  # [b, 1, t]
        # Harmonics above Nyquist get no share of the distribution; unvoiced frames get no harmonics.
        below_nyquist = ((self.harmonic_numbers[None, :, None] * f0.unsqueeze(1)) < (self.sample_rate / 2)
                         ).to(mel.dtype)
        dist = torch.softmax(head[:, 1:] - (1.0 - below_nyquist) * 1e4, dim=1) * below_nyquist
        amps = loudness * dist * voiced.unsqueeze(1)
        gains = exp_sigmoid(self.noise_head(h) + NOISE_BIAS)
        return amps, gains

    def forward(self, mel: torch.Tensor, f0: torch.Tensor, phase0: torch.Tensor,
                noise: torch.Tensor) -> torch.Tensor:
        """``mel [b, m, t]``, ``f0 [b, t]`` Hz, ``phase0 [b, 1]`` cycles, ``noise [b, 1, t * hop]`` ->
        waveform ``[b, 1, t * hop]``."""
        amps, gains = self.controls(mel, f0)
        phase = harmonic_phase(f0, phase0, self.hop_length, self.sample_rate)  # [b, s]
        harmonic = harmonic_sum(phase, amps, self.hop_length)
        taps = self.noise_filters.shape[-1]
        bands = F.conv1d(noise, self.noise_filters, padding=taps // 2)  # [b, n, s]
        noisy = frame_weighted_sum(bands, gains, self.hop_length)
        return (harmonic + noisy).unsqueeze(1)
