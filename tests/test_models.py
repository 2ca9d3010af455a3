"""Unit tests of the model components: exact shapes, exact flow invertibility, vocoder pitch and phase."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.config import Config
from engine.models.flow import FlowDecoder
from engine.models.inference import COMPONENT_IO, inference_module
from engine.models.svc import SVCModel
from engine.models.vocoder import (
    HarmonicNoiseVocoder,
    frame_start_phases,
    frame_weighted_sum,
    harmonic_phase,
    harmonic_sum,
    upsample_frames,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model(base_cfg: Config) -> SVCModel:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return SVCModel(base_cfg.model, base_cfg.audio).eval()


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Re-initialise every parameter with non-zero random values (zero-initialised post convs included).

    Weights get a fan-in scaled normal (so activations stay of order one, as in a trained net), biases
    and per-channel scales a uniform draw away from zero.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() >= 2 and p.shape[1] * (p.shape[2] if p.dim() > 2 else 1) > 1:
                fan_in = p.shape[1] * (p.shape[2] if p.dim() > 2 else 1)
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in ** 0.5)
            else:
                sign = torch.where(torch.rand(p.shape, generator=gen) < 0.5, -1.0, 1.0)
                p.copy_(sign * (0.05 + 0.25 * torch.rand(p.shape, generator=gen)))


def test_conditioning_is_derived_from_the_three_sizes(base_cfg: Config, model: SVCModel) -> None:
    m = base_cfg.model
    assert m.conditioning_dim == m.content_dim + m.pitch_dim + m.speaker_dim
    readers = [c for c in model.flow_decoder.modules()
               if isinstance(c, torch.nn.Conv1d) and c.in_channels == m.conditioning_dim]
    assert readers, "no layer of the flow reads the conditioning"
    t = 20
    with torch.no_grad(), pytest.raises(RuntimeError):  # one channel more than derived is refused
        model.flow_decoder.infer(torch.zeros(1, m.latent_dim, t), torch.ones(1, 1, t),
                                 torch.zeros(1, m.conditioning_dim + 1, t), torch.tensor([1.0]))


@pytest.mark.parametrize("samples", [160, 1000, 16000, 16037, 24159])
def test_content_encoder_frames_are_samples_over_hop(base_cfg: Config, model: SVCModel, samples: int) -> None:
    audio = torch.randn(2, samples) * 0.1
    with torch.no_grad():
        content = model.content_encoder(audio)
    assert tuple(content.shape) == (2, base_cfg.model.content_dim, samples // base_cfg.audio.hop_length)


def test_every_component_has_the_configured_shapes(base_cfg: Config, model: SVCModel) -> None:
    m, a = base_cfg.model, base_cfg.audio
    b, t = 2, 57
    s = t * a.hop_length
    f0 = torch.full((b, t), 220.0)
    f0[:, :5] = 0.0
    voiced = (f0 > 0).float()
    mask = torch.ones(b, 1, t)
    with torch.no_grad():
        content = model.content_encoder(torch.randn(b, s) * 0.1)
        pitch = model.pitch_encoder(f0, voiced)
        speaker = torch.randn(b, m.speaker_dim, 1).expand(b, m.speaker_dim, t)
        cond = torch.cat([content, pitch, speaker], dim=1)
        latent = model.flow_decoder.infer(torch.randn(b, m.latent_dim, t), mask, cond, torch.tensor([0.5]))
        mel = model.mel_projection(latent)
        wav = model.vocoder(mel, f0, torch.zeros(b, 1), torch.randn(b, 1, s))
        z, mu, logs = model.posterior_encoder(mel, mask, speaker)
        z_p, prior_mu, prior_logs = model.flow_decoder(z, mask, cond)
    assert tuple(content.shape) == (b, m.content_dim, t)
    assert tuple(pitch.shape) == (b, m.pitch_dim, t)
    assert tuple(cond.shape) == (b, m.conditioning_dim, t)
    assert tuple(latent.shape) == (b, m.latent_dim, t)
    assert tuple(mel.shape) == (b, a.n_mels, t)
    assert tuple(wav.shape) == (b, 1, s)
    for x in (z, mu, logs, z_p, prior_mu, prior_logs):
        assert tuple(x.shape) == (b, m.latent_dim, t)
    amps, gains = model.vocoder.controls(mel, f0)
    assert tuple(amps.shape) == (b, m.vocoder_harmonics, t)
    assert tuple(gains.shape) == (b, m.vocoder_noise_bands, t)
    assert torch.all(amps[:, :, :5] == 0)  # no harmonics in unvoiced frames


def test_inference_wrappers_follow_component_io(base_cfg: Config, model: SVCModel) -> None:
    m, a = base_cfg.model, base_cfg.audio
    t = 31
    inputs = {
        "content_encoder": (torch.randn(1, t * a.hop_length) * 0.1,),
        "pitch_encoder": (torch.full((1, t), 200.0), torch.ones(1, t)),
        "flow_decoder": (torch.randn(1, m.latent_dim, t), torch.ones(1, 1, t),
                         torch.randn(1, m.conditioning_dim, t), torch.tensor([1.0])),
        "mel_projection": (torch.randn(1, m.latent_dim, t),),
        "vocoder": (torch.randn(1, a.n_mels, t), torch.full((1, t), 200.0), torch.zeros(1, 1),
                    torch.randn(1, 1, t * a.hop_length)),
    }
    expected = {
        "content_encoder": (1, m.content_dim, t),
        "pitch_encoder": (1, m.pitch_dim, t),
        "flow_decoder": (1, m.latent_dim, t),
        "mel_projection": (1, a.n_mels, t),
        "vocoder": (1, 1, t * a.hop_length),
    }
    assert set(inputs) == set(COMPONENT_IO)
    for component, args in inputs.items():
        assert len(args) == len(COMPONENT_IO[component][0])
        with torch.no_grad():
            out = inference_module(model, component)(*args)
        assert tuple(out.shape) == expected[component], component


# -- flow ----------------------------------------------------------------------------------------------------
def _flow(cfg: Config, seed: int | None) -> FlowDecoder:
    m = cfg.model
    with torch.random.fork_rng():
        torch.manual_seed(0)
        flow = FlowDecoder(latent_dim=m.latent_dim, cond_dim=m.conditioning_dim, hidden=m.flow_hidden,
                           kernel_size=m.flow_kernel, n_layers=m.flow_layers, n_couplings=m.flow_couplings)
    if seed is not None:
        _randomise(flow, seed)
    return flow.eval()


def _flow_inputs(cfg: Config, lengths: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(42)
    t = max(lengths)
    mask = (torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]).unsqueeze(1).float()
    z = torch.randn(len(lengths), cfg.model.latent_dim, t, generator=gen) * mask
    cond = torch.randn(len(lengths), cfg.model.conditioning_dim, t, generator=gen)
    return z, mask, cond


@pytest.mark.parametrize("seed", [None, 1, 2, 3])
def test_flow_is_exactly_invertible(base_cfg: Config, seed: int | None) -> None:
    flow = _flow(base_cfg, seed)
    if seed is not None:  # the couplings really are random now, not the identity
        assert all(torch.count_nonzero(c.post.weight) == c.post.weight.numel() for c in flow.couplings)
    z, mask, cond = _flow_inputs(base_cfg, (80, 63))
    with torch.no_grad():
        noise = flow.to_noise(z, mask, cond)
        back = flow.infer(noise, mask, cond, torch.tensor([1.0]))
        z_p, _, _ = flow(z, mask, cond)
    if seed is not None:
        assert float((z_p - z).abs().max()) > 0.1  # a non-trivial transform was inverted
    assert torch.allclose(back, z, atol=1e-5, rtol=0), float((back - z).abs().max())


@pytest.mark.parametrize("seed", [None, 5])
def test_flow_each_coupling_inverse_is_exact(base_cfg: Config, seed: int | None) -> None:
    flow = _flow(base_cfg, seed)
    z, mask, _ = _flow_inputs(base_cfg, (40,))
    with torch.no_grad():
        for coupling in flow.couplings:
            cond = torch.randn(1, coupling.enc.cond.in_channels, 40)  # type: ignore[union-attr]
            y = coupling(z, mask, cond)
            assert torch.allclose(coupling.inverse(y, mask, cond), z, atol=1e-5, rtol=0)  # type: ignore[operator]


def test_flow_temperature_zero_pushes_the_prior_mean_through(base_cfg: Config) -> None:
    flow = _flow(base_cfg, 9)
    _, mask, cond = _flow_inputs(base_cfg, (50,))
    gen = torch.Generator().manual_seed(3)
    noise_a = torch.randn(1, base_cfg.model.latent_dim, 50, generator=gen)
    noise_b = torch.randn(1, base_cfg.model.latent_dim, 50, generator=gen)
    with torch.no_grad():
        a = flow.infer(noise_a, mask, cond, torch.tensor([0.0]))
        b = flow.infer(noise_b, mask, cond, torch.tensor([0.0]))
        # Pushing the result forward lands on the prior's mean, and its noise is exactly zero.
        z_p, mu, _ = flow(a, mask, cond)
        noise_of_a = flow.to_noise(a, mask, cond)
        sampled = flow.infer(noise_a, mask, cond, torch.tensor([1.0]))
    assert torch.equal(a, b)
    assert torch.allclose(z_p, mu, atol=1e-5, rtol=0)
    assert float(noise_of_a.abs().max()) < 1e-4
    assert float((sampled - a).abs().mean()) > 1e-2  # temperature 1 does sample


# -- vocoder -------------------------------------------------------------------------------------------------
def _fixed_vocoder(cfg: Config) -> HarmonicNoiseVocoder:
    """A vocoder whose harmonic amplitudes are constant in time, whatever their parametrisation: every
    weight of the harmonic head is zero, so its bias alone sets them. (These tests pass zero noise.)"""
    m, a = cfg.model, cfg.audio
    voc = HarmonicNoiseVocoder(sample_rate=a.sample_rate, hop_length=a.hop_length, n_mels=a.n_mels,
                               hidden=m.vocoder_hidden, n_layers=m.vocoder_layers,
                               n_harmonics=m.vocoder_harmonics, n_noise_bands=m.vocoder_noise_bands)
    with torch.no_grad():
        voc.harmonic_head.weight.zero_()
        voc.harmonic_head.bias.zero_()  # type: ignore[union-attr]
    return voc.eval()


def _praat_f0(wave: np.ndarray, sr: int, f0_min: float = 60.0, f0_max: float = 1100.0) -> np.ndarray:
    import parselmouth

    pitch = parselmouth.Sound(wave.astype(np.float64), sampling_frequency=sr).to_pitch_ac(
        time_step=0.01, pitch_floor=f0_min, pitch_ceiling=f0_max, very_accurate=True)
    f = pitch.selected_array["frequency"]
    return f[f > 0]


@pytest.mark.parametrize("f0_hz", [82.0, 196.0, 440.0, 740.0])
def test_vocoder_sings_the_f0_it_is_given(base_cfg: Config, f0_hz: float) -> None:
    voc = _fixed_vocoder(base_cfg)
    t = 100
    f0 = torch.full((1, t), f0_hz)
    hop = base_cfg.audio.hop_length
    with torch.no_grad():
        wav = voc(torch.randn(1, base_cfg.audio.n_mels, t), f0, torch.zeros(1, 1), torch.zeros(1, 1, t * hop))
    measured = _praat_f0(wav[0, 0].numpy(), base_cfg.audio.sample_rate)
    assert measured.size > 50
    err = np.abs(1200 * np.log2(measured / f0_hz))
    assert float(np.median(err)) < 5.0, float(np.median(err))


def test_vocoder_follows_a_moving_f0(base_cfg: Config) -> None:
    voc = _fixed_vocoder(base_cfg)
    sr, hop = base_cfg.audio.sample_rate, base_cfg.audio.hop_length
    t = 200
    frames = np.arange(t)
    f0 = 300.0 * 2 ** ((0.3 * np.sin(2 * np.pi * frames / 60)) / 12)  # slow 30-cent vibrato
    with torch.no_grad():
        wav = voc(torch.zeros(1, base_cfg.audio.n_mels, t), torch.tensor(f0, dtype=torch.float32)[None],
                  torch.zeros(1, 1), torch.zeros(1, 1, t * hop))
    import parselmouth

    pitch = parselmouth.Sound(wav[0, 0].numpy().astype(np.float64), sampling_frequency=sr).to_pitch_ac(
        time_step=hop / sr, pitch_floor=100.0, pitch_ceiling=600.0, very_accurate=True)
    times, measured = pitch.xs(), pitch.selected_array["frequency"]
    given = np.interp(times, (frames + 0.5) * hop / sr, f0)
    ok = measured > 0
    assert ok.sum() > 150
    assert float(np.median(np.abs(1200 * np.log2(measured[ok] / given[ok])))) < 5.0


def test_phase_is_continuous_across_calls(base_cfg: Config) -> None:
    voc = _fixed_vocoder(base_cfg)
    sr, hop = base_cfg.audio.sample_rate, base_cfg.audio.hop_length
    t, k = 120, 47
    frames = np.arange(t)
    f0 = 220.0 * 2 ** (np.round(frames / 30) / 12 + 0.25 * np.sin(frames / 7) / 12)
    f0[60:66] = 0.0  # an unvoiced gap
    phases = frame_start_phases(f0, hop, sr)
    f0_t = torch.tensor(f0, dtype=torch.float32)[None]
    mel = torch.zeros(1, base_cfg.audio.n_mels, t)
    zeros = torch.zeros(1, 1, t * hop)
    with torch.no_grad():
        whole = voc(mel, f0_t, torch.zeros(1, 1), zeros)[0, 0]
        # The first call runs one frame past the join (its last frame has no successor to glide to),
        # the second starts at the join with the start phase of the whole track.
        first = voc(mel[:, :, : k + 1], f0_t[:, : k + 1], torch.zeros(1, 1), zeros[:, :, : (k + 1) * hop])[0, 0]
        second = voc(mel[:, :, k:], f0_t[:, k:], torch.tensor([[phases[k]]], dtype=torch.float32),
                     zeros[:, :, k * hop:])[0, 0]
        ph_whole = harmonic_phase(f0_t, torch.zeros(1, 1), hop, sr)[0]
    joined = torch.cat([first[: k * hop], second])
    peak = float(whole.abs().max())
    assert peak > 0.1
    assert float((joined - whole).abs().max()) < 1e-3 * peak
    # The start phases agree with the model's own accumulation at every frame.
    d = (ph_whole[::hop].double().numpy() - phases) % 1.0
    assert float(np.max(np.minimum(d, 1.0 - d))) < 1e-4


def test_phase_continuity_is_not_vacuous(base_cfg: Config) -> None:
    """Restarting the second call at phase 0 instead is audibly discontinuous."""
    voc = _fixed_vocoder(base_cfg)
    hop, t, k = base_cfg.audio.hop_length, 60, 29
    f0 = torch.full((1, t), 233.0)
    phase_k = float(frame_start_phases(f0[0].numpy().astype(np.float64), hop, base_cfg.audio.sample_rate)[k])
    assert 0.01 < phase_k < 0.99
    with torch.no_grad():
        whole = voc(torch.zeros(1, 80, t), f0, torch.zeros(1, 1), torch.zeros(1, 1, t * hop))[0, 0]
        second = voc(torch.zeros(1, 80, t - k), f0[:, k:], torch.zeros(1, 1), torch.zeros(1, 1, (t - k) * hop))[0, 0]
    assert float((second - whole[k * hop:]).abs().max()) > 0.1 * float(whole.abs().max())


def _direct_harmonics(phase: torch.Tensor, amps: torch.Tensor, hop: int) -> torch.Tensor:
    """The textbook bank in float64: ``sum_k upsample(A_k) sin(2 pi k phase)``."""
    k = torch.arange(1, amps.shape[1] + 1, dtype=torch.float64)
    angles = 2 * np.pi * torch.remainder(phase.double().unsqueeze(1) * k[None, :, None], 1.0)
    return (torch.sin(angles) * upsample_frames(amps.double(), hop)).sum(dim=1)


@pytest.mark.parametrize("group", [8, 4, 16])
def test_harmonic_sum_is_the_textbook_bank(group: int) -> None:
    gen = torch.Generator().manual_seed(group)
    b, k, t, hop, sr = 2, 64, 37, 160, 16000
    f0 = 80 + 700 * torch.rand(b, t, generator=gen)
    f0[:, 10:14] = 0.0
    phase = harmonic_phase(f0, torch.rand(b, 1, generator=gen), hop, sr)
    amps = torch.rand(b, k, t, generator=gen)
    reference = _direct_harmonics(phase, amps, hop)
    fast = harmonic_sum(phase, amps, hop, group=group).double()
    snr = 10 * torch.log10((reference ** 2).sum() / ((reference - fast) ** 2).sum())
    assert snr > 95.0, f"{snr:.1f} dB"
    # Not vacuous: one harmonic's amplitude off by 10 % is far outside that.
    amps[:, 5] *= 1.1
    moved = 10 * torch.log10((reference ** 2).sum() / ((reference - _direct_harmonics(phase, amps, hop)) ** 2).sum())
    assert moved < 40.0


def test_harmonic_sum_refuses_an_uneven_split() -> None:
    with pytest.raises(ValueError, match="groups of 8"):
        harmonic_sum(torch.zeros(1, 160 * 3), torch.zeros(1, 60, 3), 160, group=8)


def test_frame_weighted_sum_is_the_interpolated_mix() -> None:
    gen = torch.Generator().manual_seed(3)
    signals, weights = torch.randn(2, 16, 23 * 160, generator=gen), torch.rand(2, 16, 23, generator=gen)
    direct = (signals * upsample_frames(weights, 160)).sum(dim=1)
    torch.testing.assert_close(frame_weighted_sum(signals, weights, 160), direct, rtol=1e-5, atol=1e-5)
