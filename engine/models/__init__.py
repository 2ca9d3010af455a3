"""The SVC model's components as PyTorch modules, one small module each."""

from engine.models.content import ContentEncoder
from engine.models.flow import FlowDecoder
from engine.models.mel_projection import MelProjection
from engine.models.pitch import PitchEncoder
from engine.models.posterior import PosteriorEncoder
from engine.models.svc import COMPONENTS, SVCModel
from engine.models.vocoder import HarmonicNoiseVocoder

__all__ = [
    "COMPONENTS",
    "ContentEncoder",
    "FlowDecoder",
    "HarmonicNoiseVocoder",
    "MelProjection",
    "PitchEncoder",
    "PosteriorEncoder",
    "SVCModel",
]
