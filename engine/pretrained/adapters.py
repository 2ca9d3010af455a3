"""Pretrained networks behind our component interfaces (``engine.models.inference.COMPONENT_IO``).

- :class:`HubertSoftContent`: the content encoder's ``audio [b, s] -> content [b, 256, s // hop]`` from
  HuBERT-Soft's 20 ms units, interpolated to our 10 ms frames.
- :class:`HiFiGANVocoder`: the vocoder's ``(mel, f0, phase0, noise) -> waveform [b, 1, t * hop]`` from a
  HiFi-GAN generator, which reads only the mel.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.config import AudioConfig
from engine.errors import CheckpointError
from engine.pretrained.hifigan import HiFiGANGenerator
from engine.pretrained.hubert_soft import HubertSoft

HUBERT_SAMPLE_RATE = 16000


class HubertSoftContent(nn.Module):
    """HuBERT-Soft units at our frame rate: ``audio [b, s] -> [b, units, s // hop]``.

    The units are exactly the published ``units(audio)`` (``s // 320`` of them, 20 ms apart). With its
    40-sample padding unit ``k`` is centred on sample ``320 k + 160``, midway between our frames ``2k``
    (centred on ``320 k + 80``) and ``2k + 1``; so frame ``2k`` is ``0.75 u[k] + 0.25 u[k-1]`` and frame
    ``2k + 1`` is ``0.75 u[k] + 0.25 u[k+1]`` (linear interpolation, ends held). When ``s // hop`` is odd
    the last frame has no unit of its own and holds the last unit. Needs at least 320 samples (2 frames).
    GroupNorm in the feature extractor normalises over the whole input, so a clip's units depend
    (slightly) on everything in it, zero padding included, as in the published model.
    """

    def __init__(self, hubert: HubertSoft, audio: AudioConfig, source: str = "HuBERT-Soft") -> None:
        super().__init__()
        if audio.sample_rate != HUBERT_SAMPLE_RATE or hubert.sizes.stride != 2 * audio.hop_length:
            raise CheckpointError(
                f"{source}: HuBERT-Soft makes one unit per {hubert.sizes.stride} samples at {HUBERT_SAMPLE_RATE} Hz; "
                f"the model runs at {audio.sample_rate} Hz with a hop of {audio.hop_length}, so its frames are not "
                "half a unit long")
        self.hubert = hubert
        self.hop = audio.hop_length
        self.units = hubert.sizes.units

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        frames = audio.shape[1] // self.hop
        u = self.hubert.units(audio).transpose(1, 2)  # [b, units, s // 320]
        u = torch.cat([u, u[:, :, -1:]], dim=2)  # a held last unit, for an odd final frame
        prev = torch.cat([u[:, :, :1], u[:, :, :-1]], dim=2)
        nxt = torch.cat([u[:, :, 1:], u[:, :, -1:]], dim=2)
        even, odd = 0.75 * u + 0.25 * prev, 0.75 * u + 0.25 * nxt
        return torch.stack([even, odd], dim=3).flatten(2)[:, :, :frames]  # [b, units, s // hop]


def hifigan_mismatches(generator: HiFiGANGenerator, audio: AudioConfig) -> list[str]:
    """How the generator's config differs from the model's audio settings (empty when it fits)."""
    cfg = generator.config
    pairs = (("sampling_rate", cfg.sampling_rate, "audio.sample_rate", audio.sample_rate),
             ("hop_size", cfg.hop_size, "audio.hop_length", audio.hop_length),
             ("num_mels", cfg.num_mels, "audio.n_mels", audio.n_mels))
    return [f"{name} {theirs} (ours: {key} {ours})" for name, theirs, key, ours in pairs if theirs != ours]


class HiFiGANVocoder(nn.Module):
    """A HiFi-GAN generator as the vocoder component: ``mel [b, m, t] -> waveform [b, 1, t * hop]``.

    It takes the vocoder's full input set so every backend feeds it the same way, but reads only the mel:
    HiFi-GAN has no F0 input, so the output's pitch is whatever the mel implies (not pinned to the F0 the
    way the built-in source-filter vocoder's is), and the start phase and noise inputs are unused.
    """

    def __init__(self, generator: HiFiGANGenerator, audio: AudioConfig, source: str = "HiFi-GAN") -> None:
        super().__init__()
        wrong = hifigan_mismatches(generator, audio)
        if wrong:
            raise CheckpointError(f"{source}: the generator was trained for other audio: {'; '.join(wrong)}. "
                                  "Use a HiFi-GAN trained at the model's sample rate, hop and mel count")
        self.generator = generator

    def forward(self, mel: torch.Tensor, f0: torch.Tensor, phase0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.generator(mel)
