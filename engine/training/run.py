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
from engine.training.features import MelExtractor, build_cache, load_clips, read_meta

log = logging.getLogger(__name__)
REFERENCE_CLIPS = 8


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
    seed: int = 0


def speaker_table(cfg: Config, plan: TrainPlan) -> tuple[list[str], np.ndarray]:
    """Resemblyzer embedding of every speaker: the mean over up to 8 sung clips (cached in the work dir)."""
    path = plan.work / "speakers.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return [str(n) for n in z["names"]], z["embeddings"]
    from tqdm import tqdm

    from engine.audio import load_clip
    from engine.speaker import SpeakerEncoder

    meta, _, speakers = read_meta(plan.corpus)
    enc = SpeakerEncoder.shared()
    names = sorted(speakers)
    rng = np.random.default_rng(plan.seed)
    embeddings = []
    for name in tqdm(names, desc="speaker embeddings", unit="voice"):
        clips = [m for m in meta if m["speaker"] == name and m["kind"] == "sung"] or \
                [m for m in meta if m["speaker"] == name]
        picks = rng.choice(len(clips), size=min(REFERENCE_CLIPS, len(clips)), replace=False)
        audio = [load_clip(plan.corpus / clips[i]["path"], 16000) for i in picks]
        embeddings.append(enc.embed_clips(audio))
    table = np.stack(embeddings).astype(np.float32)
    np.savez(path, names=np.array(names), embeddings=table)
    return names, table


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
    names, table = speaker_table(cfg, plan)
    meta, _, _ = read_meta(plan.corpus)
    clips = load_clips(plan.work / "features", meta, _train_ids(plan, names), MelExtractor(cfg))
    log.info("%s: %d training clips", branch, len(clips))
    if branch == "vocoder":
        train_vocoder(model, clips, plan.work, plan.vocoder_steps, max_minutes=plan.vocoder_minutes)
        return
    train_content(model, clips, plan.work, plan.content_steps, max_minutes=plan.content_minutes)
    train_decoder(model, clips, table, plan.work, plan.decoder_steps, max_minutes=plan.decoder_minutes)


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
    speaker_table(cfg, plan)
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
            "--seed", str(plan.seed)]
