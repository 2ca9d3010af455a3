"""Render the training corpus: random songs (and sentences) sung (and said) by every voice, with labels.

Layout of ``OUT`` (the contract the training code reads):

- ``clips/<speaker>/<clip_id>.wav``: 16 kHz mono float32.
- ``meta.jsonl``: one object per clip: clip_id, path (relative to OUT), speaker, song_id, kind
  (sung|spoken), split (train|heldout_song|heldout_voice), duration, phones ``[[phone, start_s, end_s]]``,
  notes ``[[start_s, end_s, f0_hz]]`` (empty for speech), pho (relative path of the .pho used, or null).
- ``phones.json``: the phone inventory, silence ``"_"`` first.
- ``pho/<song_id>.pho``: each plan as MBROLA input for 16 kHz voices (the oracle any voice can sing);
  ``<song_id>.t+5.pho`` is transposed, ``<song_id>.l13600.pho`` aimed for ``mbrola -l 13600``.
- ``speakers.json``: ``{speaker: {voice, kind, heldout, description}}``.
- ``corpus.json``: how it was made (seed, counts, hours, synthesizer warnings).

Renditions of one plan by the MBROLA and festival voices are parallel: same phones, same note timing,
equal length, sample-aligned.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from engine.data.pho import phone_spans, split_vowels, write_pho
from engine.data.phoneset import INVENTORY
from engine.data.songs import Plan, plan_song, plan_speech
from engine.data.voices import (
    MBROLA_SPLIT,
    SAMPLE_RATE,
    VOICES,
    Voice,
    ensure_voices,
    render_festival,
    render_flite,
    render_mbrola,
)
from engine.errors import AutoVoiceError

TARGET_DBFS = -20.0


@dataclass(frozen=True)
class Job:
    """One plan to render with every voice; ``split`` is its split for the training voices."""

    plan: Plan
    split: str


def fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    """Cut or zero-pad to exactly ``n`` samples (synthesizers end a few ms early or late)."""
    return audio[:n] if len(audio) >= n else np.pad(audio, (0, n - len(audio)))


def normalize(audio: np.ndarray) -> np.ndarray:
    """Scale to -20 dBFS RMS over the active 20 ms frames, keeping peaks below 0.99."""
    frames = audio[: len(audio) // 320 * 320].reshape(-1, 320)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    if rms.size == 0 or rms.max() <= 0:
        raise RuntimeError("a synthesizer returned silence")
    level = np.sqrt(np.mean(rms[rms > rms.max() * 0.01] ** 2))
    gain = 10 ** (TARGET_DBFS / 20) / level
    gain = min(gain, 0.99 / float(np.abs(audio).max()))
    return (audio * gain).astype(np.float32)


def pho_name(song_id: str, semitones: int = 0, rate: int = SAMPLE_RATE) -> str:
    """File name of a plan's .pho: ``<song_id>.pho``, with ``.t+N`` if transposed, ``.lRATE`` if aimed for
    ``mbrola -l RATE``."""
    return (song_id + (f".t{semitones:+d}" if semitones else "")
            + (f".l{rate}" if rate != SAMPLE_RATE else "") + ".pho")


def render_job(job: Job, voices: tuple[Voice, ...], root: Path) -> tuple[list[dict], Counter]:
    """Render one plan with every voice that takes it, writing clips and .pho files under ``root``.

    Returns:
        ``(meta records, count of synthesizer warnings per speaker)``.
    """
    plan = job.plan
    work = root / "work" / plan.song_id
    work.mkdir(parents=True, exist_ok=True)
    plan_max = max((f for _, _, f in plan.notes), default=0.0) or plan.max_f0
    n_samples = plan.duration_ms * SAMPLE_RATE // 1000
    records: list[dict] = []
    warnings: Counter = Counter()
    festival: dict[int, list[Voice]] = {}
    for voice in voices:
        if voice.engine == "festival":
            festival.setdefault(voice.semitones(plan.kind, plan_max), []).append(voice)
    rendered: dict[str, tuple[np.ndarray, list, list, str | None]] = {}
    for voice in voices:
        if voice.engine == "flite":
            if plan.kind == "spoken":
                audio, spans = render_flite(voice, plan.text, work)
                rendered[voice.name] = (audio, spans, [], None)
            continue
        st = voice.semitones(plan.kind, plan_max)
        moved = plan.transposed(st)
        rate = voice.rate if voice.engine == "mbrola" else SAMPLE_RATE
        pho = root / "pho" / pho_name(plan.song_id, st, rate)
        if not pho.exists():
            write_pho(pho, split_vowels(moved.segments, MBROLA_SPLIT), rate=rate,
                      comment=f"{plan.song_id} ({plan.kind}, {st:+d} st, for {rate} Hz): {plan.text}")
        notes = [[a / 1000.0, b / 1000.0, round(voice.note_f0(f), 3)] for a, b, f in moved.notes]
        rel = pho.relative_to(root).as_posix()
        if voice.engine == "mbrola":
            audio, warned = render_mbrola(voice, pho, work)
            warnings[voice.name] += len(warned)
            rendered[voice.name] = (fit_length(audio, n_samples), phone_spans(moved.segments), notes, rel)
        elif voice.name == festival[st][0].name:
            audios, warned = render_festival(festival[st], moved.segments, work)
            warnings[voice.engine] += len(warned)
            for fv, audio in audios.items():
                rendered[fv] = (fit_length(audio, n_samples), phone_spans(moved.segments), notes, rel)
    by_name = {v.name: v for v in voices}
    for name, (audio, spans, notes, pho_path) in rendered.items():
        clip_id = f"{plan.song_id}_{name}"
        path = root / "clips" / name / f"{clip_id}.wav"
        tmp = path.with_name(f".{path.name}.tmp")
        sf.write(tmp, normalize(audio), SAMPLE_RATE, subtype="FLOAT", format="WAV")
        tmp.replace(path)
        records.append({
            "clip_id": clip_id, "path": path.relative_to(root).as_posix(), "speaker": name,
            "song_id": plan.song_id, "kind": plan.kind,
            "split": "heldout_voice" if by_name[name].heldout else job.split,
            "duration": len(audio) / SAMPLE_RATE, "phones": spans, "notes": notes, "pho": pho_path,
        })
    shutil.rmtree(work)
    return records, warnings


def plan_jobs(seed: int, n_songs: int, n_speech: int, heldout_fraction: float) -> list[Job]:
    """Every plan of the corpus, with its split; depends only on the arguments."""
    song_ids = [f"song{i:04d}" for i in range(n_songs)]
    talk_ids = [f"talk{i:04d}" for i in range(n_speech)]
    rng = random.Random(f"split/{seed}")
    held = set()
    for ids in (song_ids, talk_ids):
        k = min(len(ids) - 1, max(1, round(heldout_fraction * len(ids)))) if len(ids) > 1 else 0
        held.update(rng.sample(ids, k))
    jobs = [Job(plan_song(s, seed), "heldout_song" if s in held else "train") for s in song_ids]
    jobs += [Job(plan_speech(s, seed), "heldout_song" if s in held else "train") for s in talk_ids]
    return jobs


def _swap_in(tmp: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by ``tmp`` with renames, refusing to delete anything but an old corpus."""
    if out_dir.exists():
        if any(out_dir.iterdir()) and not (out_dir / "meta.jsonl").exists():
            raise AutoVoiceError(f"{out_dir} exists and is not a corpus; choose another --out")
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old)
    else:
        tmp.rename(out_dir)


def make_dataset(out_dir: str | Path, *, seed: int = 0, n_songs: int = 300, n_speech: int | None = None,
                 heldout_song_fraction: float = 0.1, voices: tuple[Voice, ...] = VOICES,
                 workers: int | None = None, install: bool = True, progress: bool = True) -> Path:
    """Render the corpus into ``out_dir`` (built in a temporary folder, then renamed into place).

    Args:
        out_dir: destination; an existing corpus there is replaced, any other non-empty folder refused.
        seed: every song, sentence and split follows from it.
        n_songs: number of random songs.
        n_speech: number of spoken sentences (default: a quarter of ``n_songs``).
        heldout_song_fraction: share of songs and sentences kept out of training (split ``heldout_song``).
        voices: speakers to render; those with ``heldout`` form the ``heldout_voice`` split.
        workers: rendering processes (default: one per CPU core).
        install: install missing Debian voices when running as root.
        progress: show a tqdm progress bar.

    Returns:
        ``out_dir`` as a Path.
    """
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "meta.jsonl").exists():
        raise AutoVoiceError(f"{out_dir} exists and is not a corpus; choose another --out")
    ensure_voices(voices, install=install)
    n_speech = max(1, n_songs // 4) if n_speech is None else n_speech
    jobs = plan_jobs(seed, n_songs, n_speech, heldout_song_fraction)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for sub in ["pho", *(f"clips/{v.name}" for v in voices)]:
            (tmp / sub).mkdir(parents=True)
        records, warnings = _render_all(jobs, voices, tmp, workers or os.cpu_count() or 1, progress)
        _write_index(tmp, records, warnings, voices, seed=seed, n_songs=n_songs, n_speech=n_speech)
        shutil.rmtree(tmp / "work", ignore_errors=True)
        _swap_in(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _render_all(jobs: list[Job], voices: tuple[Voice, ...], root: Path, workers: int,
                progress: bool) -> tuple[list[dict], Counter]:
    records: list[dict] = []
    warnings: Counter = Counter()
    bar = tqdm(total=len(jobs), desc="rendering", unit="plan", disable=not progress)
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(render_job, job, voices, root) for job in jobs]
        for future in as_completed(futures):
            recs, warned = future.result()
            records += recs
            warnings.update(warned)
            bar.update()
    bar.close()
    return sorted(records, key=lambda r: r["clip_id"]), warnings


def _write_index(root: Path, records: list[dict], warnings: Counter, voices: tuple[Voice, ...],
                 **settings: int) -> None:
    with open(root / "meta.jsonl", "w") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")
    (root / "phones.json").write_text(json.dumps(list(INVENTORY)) + "\n")
    speakers = {v.name: {"voice": f"{v.engine}:{v.model}" + (f" -l {v.rate}" if v.rate != SAMPLE_RATE else ""),
                         "kind": v.kind, "heldout": v.heldout, "description": v.description} for v in voices}
    (root / "speakers.json").write_text(json.dumps(speakers, indent=1) + "\n")
    seconds: dict[str, float] = defaultdict(float)
    for rec in records:
        seconds[rec["speaker"]] += rec["duration"]
    manifest = {
        **settings, "sample_rate": SAMPLE_RATE, "clips": len(records),
        "hours": round(sum(seconds.values()) / 3600, 3),
        "splits": dict(Counter(r["split"] for r in records)),
        "seconds_per_speaker": {k: round(v, 1) for k, v in sorted(seconds.items())},
        "synthesizer_warnings": dict(warnings),
    }
    (root / "corpus.json").write_text(json.dumps(manifest, indent=1) + "\n")
