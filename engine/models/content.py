"""Content encoder: raw 16 kHz audio -> speaker-independent content features ``[b, 256, t]``.

A phonetic-posteriorgram bottleneck: a conv stack over a log-mel front end classifies each frame into
phones; the content features are a learned projection of the phone posteriors, so they carry what is
sung, not who sings it. The front end is a strided conv with DFT bases (exportable to ONNX/TensorRT).
"""

from __future__ import annotations

import torch
from torch import nn

from engine.dsp import log_mel, mel_filterbank, stft_basis
from engine.models.layers import ChannelNorm, ResConvStack


class ContentEncoder(nn.Module):
    basis: torch.Tensor
    mel_fb: torch.Tensor

    def __init__(self, *, sample_rate: int, hop_length: int, n_fft: int, n_mels: int, hidden: int,
                 n_layers: int, n_phones: int, out_dim: int) -> None:
        super().__init__()
        self.hop_length = hop_length
        self.register_buffer("basis", stft_basis(n_fft), persistent=False)
        self.register_buffer("mel_fb", torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels)),
                             persistent=False)
        self.pre = nn.Conv1d(n_mels, hidden, 5, padding=2)
        self.body = ResConvStack(hidden, n_layers, kernel_size=5, dilation_cycle=3)
        self.norm = ChannelNorm(hidden)
        self.classifier = nn.Conv1d(hidden, n_phones, 1)
        self.proj = nn.Conv1d(n_phones, out_dim, 1)

    def phone_logits(self, audio: torch.Tensor) -> torch.Tensor:
        """``[b, s] -> [b, n_phones, s // hop]``."""
        mel = log_mel(audio, self.basis, self.mel_fb, self.hop_length)  # [b, m, t]
        h = self.body(self.pre(mel))
        return self.classifier(self.norm(h))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """``audio [b, s] -> content [b, out_dim, s // hop]``."""
        posteriors = torch.softmax(self.phone_logits(audio), dim=1)
        return self.proj(posteriors)
