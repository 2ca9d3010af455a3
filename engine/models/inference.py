"""Each component wrapped to its inference signature: positional inputs in the order of ``COMPONENT_IO``.

The same wrappers are what the PyTorch backend runs and what export traces, so every backend computes
the same function.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.models.svc import SVCModel

# component -> (input names, output names); shapes: b = batch, s = samples, t = frames.
COMPONENT_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "content_encoder": (("audio",), ("content",)),                                   # [b, s] -> [b, 256, t]
    "pitch_encoder": (("f0", "voiced"), ("pitch",)),                                 # [b, t] x2 -> [b, 192, t]
    "flow_decoder": (("noise", "mask", "conditioning", "temperature"), ("latent",)),  # -> [b, 192, t]
    "mel_projection": (("latent",), ("mel",)),                                       # -> [b, 80, t]
    "vocoder": (("mel", "f0", "phase0", "noise"), ("waveform",)),                    # -> [b, 1, t * hop]
}


class ContentEncoderInference(nn.Module):
    def __init__(self, model: SVCModel) -> None:
        super().__init__()
        self.m = model.content_encoder

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.m(audio)


class PitchEncoderInference(nn.Module):
    def __init__(self, model: SVCModel) -> None:
        super().__init__()
        self.m = model.pitch_encoder

    def forward(self, f0: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
        return self.m(f0, voiced)


class FlowDecoderInference(nn.Module):
    def __init__(self, model: SVCModel) -> None:
        super().__init__()
        self.m = model.flow_decoder

    def forward(self, noise: torch.Tensor, mask: torch.Tensor, conditioning: torch.Tensor,
                temperature: torch.Tensor) -> torch.Tensor:
        return self.m.infer(noise, mask, conditioning, temperature)


class MelProjectionInference(nn.Module):
    def __init__(self, model: SVCModel) -> None:
        super().__init__()
        self.m = model.mel_projection

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.m(latent)


class VocoderInference(nn.Module):
    def __init__(self, model: SVCModel) -> None:
        super().__init__()
        self.m = model.vocoder

    def forward(self, mel: torch.Tensor, f0: torch.Tensor, phase0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.m(mel, f0, phase0, noise)


_WRAPPERS: dict[str, type[nn.Module]] = {
    "content_encoder": ContentEncoderInference,
    "pitch_encoder": PitchEncoderInference,
    "flow_decoder": FlowDecoderInference,
    "mel_projection": MelProjectionInference,
    "vocoder": VocoderInference,
}


def inference_module(model: SVCModel, component: str) -> nn.Module:
    """The eval-mode wrapper of one component."""
    return _WRAPPERS[component](model).eval()
