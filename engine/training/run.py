"""Train every component from a corpus: features -> [content -> decoder] || [vocoder] -> checkpoint + voices.

The two branches run as two processes (one core each); every stage checkpoints and resumes, so an
interrupted run continues where it stopped when started again with the same ``--work`` folder.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.checkpoint import save_checkpoint
from engine.config import Config, ConfigError, ModelConfig
from engine.models.svc import SVCModel
from engine.speaker import EMBEDDING_DIM
from engine.training.features import MelExtractor, build_cache, load_clips, read_meta

log = logging.getLogger(__name__)
POOL_CLIPS = 32


@dataclass
class TrainPlan:
    corpus: Path
    work: Path
    out: Path
    content_steps: int = 1500
    vocoder_steps: int = 3000
    decoder_steps: int = 3000
    content_minutes: float = 10.0
    vocoder_minutes: float = 40.0
    decoder_minutes: float = 30.0
    speaker_clips: int = 8  # the decoder's speaker embedding averages 1..N pooled clips (0: all, fixed)
    seed: int = 0


def speaker_pool(cfg: Config, plan: TrainPlan) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Resemblyzer embeddings of up to 32 clips of every training speaker (sung where it sings; none of a
    held-out song), cached in the work dir: ``(names, pool [speakers, 32, 256], counts [speakers])``, with
    count 0 for held-out voices. The decoder is conditioned on the mean of a few of them at a time
    (:func:`engine.training.stages.sample_speaker_embeddings`), as a voice profile made from a few
    reference clips is at inference."""
    path = plan.work / "speakers.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            if "pool" not in z.files:
                raise ConfigError(f"{path} holds one mean embedding per voice (an earlier recipe), not the clip "
                                  "pool this one conditions on; delete it and train again to embed the clips")
            return [str(n) for n in z["names"]], z["pool"], z["counts"]
    from tqdm import tqdm

    from engine.audio import load_clip
    from engine.speaker import SpeakerEncoder

    meta, _, speakers = read_meta(plan.corpus)
    enc = SpeakerEncoder.shared()
    names = sorted(speakers)
    rng = np.random.default_rng(plan.seed)
    pool = np.zeros((len(names), POOL_CLIPS, EMBEDDING_DIM), np.float32)
    counts = np.zeros(len(names), np.int64)
    for i, name in enumerate(tqdm(names, desc="speaker embeddings", unit="voice")):
        if speakers[name].get("heldout"):
            continue  # never trained on: its audio is not read
        own = [m for m in meta if m["speaker"] == name and m["split"] != "heldout_song"]
        clips = [m for m in own if m["kind"] == "sung"] or own
        picks = rng.choice(len(clips), size=min(POOL_CLIPS, len(clips)), replace=False)
        for j, k in enumerate(picks):
            pool[i, j] = enc.embed_clip(load_clip(plan.corpus / clips[k]["path"], 16000))
        counts[i] = len(picks)
    np.savez(path, names=np.array(names), pool=pool, counts=counts)
    return names, pool, counts


def _initial_model(cfg: Config, plan: TrainPlan) -> SVCModel:
    builtin = ModelConfig()
    if (cfg.model.content_features, cfg.model.mel_features) != (builtin.content_features, builtin.mel_features):
        raise ConfigError(f"this training recipe trains on the built-in content encoder's features and mels "
                          f"(model.content_features: {builtin.content_features}, model.mel_features: "
                          f"{builtin.mel_features}), not {cfg.model.content_features} / {cfg.model.mel_features}")
    torch.manual_seed(plan.seed)
    model = SVCModel(cfg.model, cfg.audio)
    init = plan.work / "init.pt"
    if init.exists():
        model.load_state_dict(torch.load(init, map_location="cpu", weights_only=True))
    else:
        torch.save(model.state_dict(), init)
    return model


def _train_ids(plan: TrainPlan, names: list[str]) -> dict[str, int]:
    speakers = json.loads((plan.corpus / "speakers.json").read_text())
    return {n: i for i, n in enumerate(names) if not speakers[n].get("heldout")}


def run_branch(cfg: Config, plan: TrainPlan, branch: str) -> None:
    """``branch`` is ``"content+decoder"`` or ``"vocoder"``; run in its own process by :func:`train`."""
    from engine.training.stages import train_content, train_decoder, train_vocoder

    torch.set_num_threads(1)
    model = _initial_model(cfg, plan)
    names, pool, counts = speaker_pool(cfg, plan)
    meta, _, _ = read_meta(plan.corpus)
    clips = load_clips(plan.work / "features", meta, _train_ids(plan, names), MelExtractor(cfg))
    log.info("%s: %d training clips", branch, len(clips))
    if branch == "vocoder":
        train_vocoder(model, clips, plan.work, plan.vocoder_steps, max_minutes=plan.vocoder_minutes)
        return
    train_content(model, clips, plan.work, plan.content_steps, max_minutes=plan.content_minutes)
    train_decoder(model, clips, pool, counts, plan.work, plan.decoder_steps, max_minutes=plan.decoder_minutes,
                  speaker_clips=plan.speaker_clips)


def assemble(cfg: Config, plan: TrainPlan, seconds: float) -> Path:
    """Collect the stages' weights into one checkpoint (with its config and how it was made)."""
    model = _initial_model(cfg, plan)
    steps = {}
    for stage in ("content", "vocoder", "decoder"):
        state = torch.load(plan.work / f"{stage}.state", map_location="cpu", weights_only=True)
        steps[stage] = int(state["step"])
        for key, sd in state["modules"].items():
            target = model.content_encoder.proj if key == "content_proj" else getattr(model, key)
            target.load_state_dict(sd)
    info = {"corpus": str(plan.corpus), "steps": steps, "train_seconds": round(seconds, 1),
            "threads": 2, "seed": plan.seed, "command": " ".join(["autovoice", *sys.argv[1:]])}
    return save_checkpoint(model, plan.out, trained=True, info=info)


def builtin_voices(cfg: Config, plan: TrainPlan, voices_dir: Path, clips_per_voice: int = 3) -> list[str]:
    """A voice profile for every corpus speaker (held-out ones too), from a few of its sung clips."""
    from engine.audio import load_clip
    from engine.voices import VoiceStore, profile_from_clips

    meta, _, speakers = read_meta(plan.corpus)
    store = VoiceStore(voices_dir)
    made = []
    for name, info in sorted(speakers.items()):
        split = "heldout_voice" if info.get("heldout") else "train"
        picks = [m for m in meta if m["speaker"] == name and m["kind"] == "sung" and m["split"] == split]
        if not picks:
            continue
        audio = [load_clip(plan.corpus / m["path"], 16000) for m in picks[:clips_per_voice]]
        store.save(profile_from_clips(name, audio, source="builtin"), audio[:1])
        made.append(name)
    return made


def train(cfg: Config, plan: TrainPlan) -> Path:
    t0 = time.monotonic()
    plan.work.mkdir(parents=True, exist_ok=True)
    build_cache(cfg, plan.corpus, plan.work / "features")
    speaker_pool(cfg, plan)
    _initial_model(cfg, plan)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = []
    for branch in ("content+decoder", "vocoder"):
        cmd = [sys.executable, "-m", "autovoice", "train", "--corpus", str(plan.corpus), "--work", str(plan.work),
               "--out", str(plan.out), "--branch", branch, *_plan_args(plan)]
        procs.append((branch, subprocess.Popen(cmd, env=env)))
    failed = [b for b, p in procs if p.wait() != 0]
    if failed:
        raise RuntimeError(f"training branch(es) failed: {', '.join(failed)}")
    return assemble(cfg, plan, time.monotonic() - t0)


def _plan_args(plan: TrainPlan) -> list[str]:
    return ["--content-steps", str(plan.content_steps), "--vocoder-steps", str(plan.vocoder_steps),
            "--decoder-steps", str(plan.decoder_steps), "--content-minutes", str(plan.content_minutes),
            "--vocoder-minutes", str(plan.vocoder_minutes), "--decoder-minutes", str(plan.decoder_minutes),
            "--speaker-clips", str(plan.speaker_clips), "--seed", str(plan.seed)]
