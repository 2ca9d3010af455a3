"""The whole model: five inference components plus the training-only posterior encoder."""

from __future__ import annotations

from torch import nn

from engine.config import AudioConfig, ModelConfig
from engine.models.content import ContentEncoder
from engine.models.flow import FlowDecoder
from engine.models.mel_projection import MelProjection
from engine.models.pitch import PitchEncoder
from engine.models.posterior import PosteriorEncoder
from engine.models.vocoder import HarmonicNoiseVocoder

# The components that run as engines, in pipeline order.
COMPONENTS = ("content_encoder", "pitch_encoder", "flow_decoder", "mel_projection", "vocoder")


class SVCModel(nn.Module):
    def __init__(self, model: ModelConfig, audio: AudioConfig) -> None:
        super().__init__()
        self.model_config = model
        self.audio_config = audio
        self.content_encoder = ContentEncoder(
            sample_rate=audio.sample_rate, hop_length=audio.hop_length, n_fft=model.content_fft,
            n_mels=model.content_mels, hidden=model.content_hidden, n_layers=model.content_layers,
            n_phones=model.n_phones, out_dim=model.content_dim,
        )
        self.pitch_encoder = PitchEncoder(hidden=model.pitch_hidden, out_dim=model.pitch_dim)
        self.flow_decoder = FlowDecoder(
            latent_dim=model.latent_dim, cond_dim=model.conditioning_dim, hidden=model.flow_hidden,
            kernel_size=model.flow_kernel, n_layers=model.flow_layers, n_couplings=model.flow_couplings,
        )
        self.mel_projection = MelProjection(latent_dim=model.latent_dim, hidden=model.mel_hidden,
                                            n_mels=audio.n_mels)
        self.vocoder = HarmonicNoiseVocoder(
            sample_rate=audio.sample_rate, hop_length=audio.hop_length, n_mels=audio.n_mels,
            hidden=model.vocoder_hidden, n_layers=model.vocoder_layers, n_harmonics=model.vocoder_harmonics,
            n_noise_bands=model.vocoder_noise_bands,
        )
        self.posterior_encoder = PosteriorEncoder(
            n_mels=audio.n_mels, latent_dim=model.latent_dim, hidden=model.posterior_hidden,
            n_layers=model.posterior_layers, cond_dim=model.speaker_dim,
        )
