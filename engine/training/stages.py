"""The three training stages. Each trains its own modules and can run in its own process.

1. ``content``: the content encoder as a frame-level phone classifier (the PPG bottleneck).
2. ``vocoder``: the harmonic-plus-noise vocoder on ground-truth mels and F0, multi-resolution STFT loss.
3. ``decoder``: posterior encoder, flow (maximum likelihood on posterior latents, as VITS), mel projection,
   pitch encoder and the content projection, with the phone classifier frozen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from engine.models.layers import sequence_mask
from engine.models.svc import SVCModel
from engine.training.batches import CropSampler
from engine.training.features import Clip
from engine.training.loop import run_loop
from engine.training.losses import kl_loss, multi_resolution_stft_loss

MEL_WEIGHT = 10.0
MAX_PROFILE_CLIPS = 8  # by default a sampled speaker embedding averages 1..8 clips


def sample_speaker_embeddings(pool: torch.Tensor, counts: torch.Tensor, speakers: torch.Tensor,
                              gen: torch.Generator, max_clips: int = MAX_PROFILE_CLIPS) -> torch.Tensor:
    """One conditioning embedding per batch item: the L2-normalised mean of ``k`` (1 to ``max_clips``,
    uniform) of its speaker's pooled clip embeddings, drawn without replacement. A voice profile at
    inference averages a few reference clips, whose mean lies up to ~0.07 (cosine) from a many-clip mean,
    so training sees that spread too. ``max_clips=0`` gives one fixed mean per voice (of all its pooled
    clips) instead; on the demo corpus the two score within 0.003 of each other (README, demo model).

    ``pool [speakers, clips, d]``, ``counts [speakers]``, ``speakers [b]`` -> ``[b, d]``.
    """
    rows = []
    for s in speakers.tolist():
        n = int(counts[s])
        if n < 1:
            raise ValueError(f"speaker {s} has no pooled embeddings")
        if max_clips == 0:
            rows.append(pool[s, :n].mean(dim=0))
            continue
        k = int(torch.randint(1, min(max_clips, n) + 1, (1,), generator=gen))
        picks = torch.randperm(n, generator=gen)[:k]
        rows.append(pool[s, picks].mean(dim=0))
    emb = torch.stack(rows)
    return emb / emb.norm(dim=1, keepdim=True).clamp_min(1e-8)


def train_content(model: SVCModel, clips: list[Clip], work: Path, steps: int, batch: int = 12,
                  frames: int = 100, max_minutes: float | None = None) -> None:
    enc = model.content_encoder
    sampler = CropSampler(clips, frames, enc.hop_length, seed=1)
    params = [p for n, p in enc.named_parameters() if not n.startswith("proj.")]

    def step(_: int) -> dict[str, torch.Tensor]:
        b = sampler.sample(batch)
        gain = torch.exp(torch.empty(batch, 1).uniform_(-1.5, 0.5))  # level invariance
        logits = enc.phone_logits(b.audio * gain)
        ce = F.cross_entropy(logits, b.phones)
        acc = (logits.argmax(1) == b.phones).float().mean().detach()
        return {"ce": ce, "_acc": acc}

    run_loop("content", {"content_encoder": enc}, params, step, steps, work / "content.state",
             work / "losses.jsonl", lr=2e-3, max_minutes=max_minutes)


def train_vocoder(model: SVCModel, clips: list[Clip], work: Path, steps: int, batch: int = 8,
                  frames: int = 50, max_minutes: float | None = None) -> None:
    voc = model.vocoder
    sampler = CropSampler(clips, frames, voc.hop_length, seed=2)

    def step(_: int) -> dict[str, torch.Tensor]:
        b = sampler.sample(batch)
        noise = torch.randn(batch, 1, b.audio.shape[1])
        phase0 = torch.rand(batch, 1)
        wav = voc(b.mel, b.f0, phase0, noise)[:, 0]
        return {"stft": multi_resolution_stft_loss(wav, b.audio)}

    run_loop("vocoder", {"vocoder": voc}, list(voc.parameters()), step, steps, work / "vocoder.state",
             work / "losses.jsonl", lr=1e-3, max_minutes=max_minutes)


def train_decoder(model: SVCModel, clips: list[Clip], speaker_pool: np.ndarray, speaker_counts: np.ndarray,
                  work: Path, steps: int, batch: int = 8, frames: int = 100, max_minutes: float | None = None,
                  speaker_clips: int = MAX_PROFILE_CLIPS) -> None:
    hop = model.audio_config.hop_length
    sampler = CropSampler(clips, frames, hop, seed=3)
    pool = torch.from_numpy(speaker_pool.astype(np.float32))
    counts = torch.from_numpy(speaker_counts.astype(np.int64))
    gen = torch.Generator().manual_seed(4)
    enc = model.content_encoder
    trained = [model.posterior_encoder, model.flow_decoder, model.mel_projection, model.pitch_encoder]
    params = [p for m in trained for p in m.parameters()] + list(enc.proj.parameters())

    def step(_: int) -> dict[str, torch.Tensor]:
        b = sampler.sample(batch)
        with torch.no_grad():
            posteriors = torch.softmax(enc.phone_logits(b.audio), dim=1)
        content = enc.proj(posteriors)
        voiced = (b.f0 > 0).float()
        pitch = model.pitch_encoder(b.f0, voiced)
        spk = sample_speaker_embeddings(pool, counts, b.speaker, gen, speaker_clips)
        spk = spk.unsqueeze(-1).expand(-1, -1, frames)
        cond = torch.cat([content, pitch, spk], dim=1)
        mask = sequence_mask(torch.full((batch,), frames), frames)
        z, _, logs_q = model.posterior_encoder(b.mel, mask, spk)
        z_p, m_p, logs_p = model.flow_decoder(z, mask, cond)
        recon = F.l1_loss(model.mel_projection(z), b.mel)
        # The mode of the prior pushed through the flow (temperature 0, what inference uses) must decode too;
        # half the batch is enough for this signal and halves its cost.
        h = batch // 2
        z_mode = model.flow_decoder.infer(torch.zeros_like(z[:h]), mask[:h], cond[:h], torch.zeros(1))
        mode = F.l1_loss(model.mel_projection(z_mode), b.mel[:h])
        return {"mel": MEL_WEIGHT * recon, "kl": kl_loss(z_p, logs_q, m_p, logs_p, mask), "mode": MEL_WEIGHT * mode}

    modules = {"posterior_encoder": model.posterior_encoder, "flow_decoder": model.flow_decoder,
               "mel_projection": model.mel_projection, "pitch_encoder": model.pitch_encoder,
               "content_proj": enc.proj}
    run_loop("decoder", modules, params, step, steps, work / "decoder.state", work / "losses.jsonl",
             lr=1e-3, max_minutes=max_minutes)
