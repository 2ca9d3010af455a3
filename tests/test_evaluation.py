"""Evaluation metrics on signals with known answers, the baselines, pair selection, and ``autovoice eval``
end to end on a small synthetic parallel corpus (harmonic "voices" with different formants)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.evaluation import mcd, metrics
from engine.evaluation.baselines import EnvelopeSwap, long_term_envelope
from engine.evaluation.corpus import SEEN, UNSEEN, EvalCorpus, select_pairs
from engine.evaluation.runner import METRICS, SYSTEMS

SR = 16000
# (centre Hz, bandwidth Hz, gain): three vowel-like envelopes, one per synthetic voice.
VOICES = {
    "alto": {"formants": ((820.0, 110.0, 1.0), (1250.0, 130.0, 0.6), (2900.0, 170.0, 0.3)), "transpose": 5,
             "heldout": False},
    "bass": {"formants": ((420.0, 80.0, 1.0), (850.0, 100.0, 0.5), (2450.0, 150.0, 0.2)), "transpose": 0,
             "heldout": False},
    "tenor": {"formants": ((300.0, 60.0, 1.0), (2250.0, 150.0, 0.6), (3100.0, 180.0, 0.35)), "transpose": 2,
              "heldout": True},
}
SONGS = {"song0000": "train", "song0001": "train", "song0002": "heldout_song", "song0003": "heldout_song"}
SCALE = (0, 2, 4, 5, 7, 9, 11, 12)
LEAD_S = 0.2


def song_notes(song_id: str, semitones: int = 0, n: int = 6, note_s: float = 0.3) -> list[list[float]]:
    """``[[start_s, end_s, f0_hz]]``: ``n`` back-to-back notes around 140 Hz, chosen by the song id."""
    rng = np.random.default_rng(int(song_id[-4:]))
    degrees = rng.choice(SCALE, size=n)
    return [[LEAD_S + i * note_s, LEAD_S + (i + 1) * note_s, 140.0 * 2.0 ** ((d + semitones) / 12.0)]
            for i, d in enumerate(degrees)]


def render(notes: list[list[float]], formants: tuple[tuple[float, float, float], ...], sr: int = SR) -> np.ndarray:
    """A sung vowel following ``notes`` (with 30 ms glides and light vibrato), silent before and after."""
    end = notes[-1][1] + LEAD_S
    t = np.arange(int(end * sr)) / sr
    f0 = np.zeros_like(t)
    for a, b, f in notes:
        f0[(t >= a) & (t < b)] = f
    voiced = f0 > 0
    idx = np.flatnonzero(voiced)
    f0 = np.interp(t, t[idx], f0[idx])  # hold the edge notes through the silences (gated below)
    kernel = np.hanning(int(0.03 * sr))
    f0 = np.convolve(np.pad(f0, len(kernel) // 2, mode="edge"), kernel / kernel.sum(), mode="same")[
        len(kernel) // 2: len(kernel) // 2 + len(t)]
    f0 *= 2.0 ** (0.15 / 12.0 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = np.zeros_like(t)
    for k in range(1, int(7000 // f0.min()) + 1):
        fk = k * f0
        env = sum(g / (1.0 + ((fk - fc) / bw) ** 2) for fc, bw, g in formants) + 0.02 / k
        y += np.where(fk < 7000.0, env, 0.0) * np.sin(k * phase)
    gate = np.convolve(voiced.astype(float), np.ones(160) / 160, mode="same")
    y *= gate
    return (0.3 * y / np.max(np.abs(y))).astype(np.float32)


def tone(f0: float, seconds: float = 1.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 9)) * 0.2  # type: ignore[return-value]


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every voice sings every song (sample-aligned renditions), in the ``make-dataset`` layout."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "pho").mkdir()
    speakers, lines = {}, []
    for name, v in VOICES.items():
        (root / "clips" / name).mkdir(parents=True)
        speakers[name] = {"voice": f"synthetic:{name}", "kind": "sung+spoken", "heldout": v["heldout"],
                          "description": f"harmonic tone through {name} formants"}
        for song_id, split in SONGS.items():
            notes = song_notes(song_id, v["transpose"])
            audio = render(notes, v["formants"])
            clip_id = f"{song_id}_{name}"
            path = root / "clips" / name / f"{clip_id}.wav"
            sf.write(str(path), audio, SR, subtype="FLOAT")
            pho = root / "pho" / f"{song_id}.pho"
            pho.write_text("_ 200\na 1800 0 140\n_ 200\n")
            lines.append({"clip_id": clip_id, "path": path.relative_to(root).as_posix(), "speaker": name,
                          "song_id": song_id, "kind": "sung", "split": "heldout_voice" if v["heldout"] else split,
                          "duration": len(audio) / SR, "phones": [["_", 0.0, LEAD_S], ["a", LEAD_S, notes[-1][1]]],
                          "notes": notes, "pho": pho.relative_to(root).as_posix()})
    (root / "speakers.json").write_text(json.dumps(speakers))
    (root / "meta.jsonl").write_text("".join(json.dumps(rec) + "\n" for rec in lines))
    return root


@pytest.fixture(scope="module")
def untrained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An UNTRAINED checkpoint of the default-sized model (the same weights every run)."""
    import torch

    from engine.checkpoint import save_checkpoint
    from engine.config import load_config
    from engine.models.svc import SVCModel

    cfg = load_config(environ={})
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = SVCModel(cfg.model, cfg.audio)
    return save_checkpoint(model, tmp_path_factory.mktemp("checkpoint") / "untrained.pt", trained=False)


def clip(corpus_dir: Path, song_id: str, voice: str) -> np.ndarray:
    audio, _ = sf.read(str(corpus_dir / "clips" / voice / f"{song_id}_{voice}.wav"), dtype="float32")
    return audio


# -- metrics ------------------------------------------------------------------------------------------------
def test_f0_error_of_a_tone_50_cents_sharp() -> None:
    a, b = metrics.praat_f0(tone(200.0)), metrics.praat_f0(tone(200.0 * 2 ** (50 / 1200)))
    err = metrics.f0_error(b, a)
    assert err.frames > 80
    assert abs(err.median_cents - 50.0) < 2.0
    assert metrics.f0_error(b, a, transpose=0.5).median_cents < 2.0  # asking for +50 cents: no error


def test_identical_signals_have_zero_mcd_and_full_voicing(corpus_dir: Path) -> None:
    x = clip(corpus_dir, "song0002", "bass")
    f0 = metrics.praat_f0(x)
    assert metrics.voicing_agreement(f0, f0) == 1.0
    assert mcd.mel_cepstral_distortion(x, x, f0, f0) < 1e-6
    assert mcd.mel_cepstral_distortion(0.5 * x, x, f0, f0) < 0.05  # c0 (loudness) is left out
    assert metrics.duration_ratio(x, x) == 1.0


def test_different_vowel_envelope_gives_positive_mcd(corpus_dir: Path) -> None:
    a, b = clip(corpus_dir, "song0002", "bass"), clip(corpus_dir, "song0002", "alto")
    d = mcd.mel_cepstral_distortion(a, b, metrics.praat_f0(a), metrics.praat_f0(b))
    assert d > 2.0


def test_voicing_agreement_counts_frames() -> None:
    assert metrics.voicing_agreement(np.array([0, 100, 100, 0.0]), np.array([0, 100, 0, 0.0])) == 0.75


def test_freqt_round_trip_and_identity() -> None:
    assert np.allclose(mcd.freqt_matrix(40, 24, 0.0), np.eye(25, 40))
    c = np.array([0.5, 0.3, -0.2, 0.1, 0.05, 0.01])
    warped = mcd.freqt_matrix(6, 200, 0.42) @ c
    assert np.allclose(mcd.freqt_matrix(201, 5, -0.42) @ warped, c, atol=1e-9)


def test_speaker_similarity_is_cosine() -> None:
    assert metrics.speaker_similarity(np.array([1.0, 0.0]), np.array([2.0, 0.0])) == pytest.approx(1.0)
    assert metrics.speaker_similarity(np.array([1.0, 0.0]), np.array([0.0, 3.0])) == pytest.approx(0.0)


# -- baselines ----------------------------------------------------------------------------------------------
def test_envelope_swap_keeps_duration_and_pitch_and_moves_towards_the_target(corpus_dir: Path) -> None:
    refs = {v: long_term_envelope([clip(corpus_dir, "song0000", v)]) for v in ("bass", "alto")}
    src, oracle = clip(corpus_dir, "song0002", "bass"), clip(corpus_dir, "song0002", "alto")
    out = EnvelopeSwap(refs["bass"], refs["alto"]).convert(src, transpose=5)
    assert out.shape == src.shape and out.dtype == np.float32
    f0_src, f0_out, f0_oracle = metrics.praat_f0(src), metrics.praat_f0(out), metrics.praat_f0(oracle)
    assert metrics.f0_error(f0_out, f0_src, 5).median_cents < 5.0
    assert metrics.voicing_agreement(f0_out, f0_src) > 0.9
    swapped = mcd.mel_cepstral_distortion(out, oracle, f0_out, f0_oracle)
    untouched = mcd.mel_cepstral_distortion(src, oracle, f0_src, f0_oracle)
    assert swapped < 0.9 * untouched  # ~0.8 here; the inverse ratio would give ~2


# -- pairs --------------------------------------------------------------------------------------------------
def test_pairs_have_oracles_transposes_and_balanced_groups(corpus_dir: Path) -> None:
    corpus = EvalCorpus(corpus_dir)
    pairs = corpus.pairs()
    # 2 held-out songs x 2 training sources x (1 seen + 1 unseen target).
    assert len(pairs) == 8
    assert {p.group for p in pairs} == {SEEN, UNSEEN}
    for p in pairs:
        assert p.oracle.song_id == p.source.song_id and p.oracle.speaker == p.target != p.source.speaker
        assert p.transpose == VOICES[p.target]["transpose"] - VOICES[p.source.speaker]["transpose"]
    chosen = select_pairs(pairs, 3)
    assert len(chosen) == 3 and {p.group for p in chosen} == {SEEN, UNSEEN}
    assert select_pairs(pairs, 3) == chosen  # deterministic
    scoring, conditioning = corpus.references("tenor", 1)
    assert {c.song_id for c in scoring + conditioning} == {"song0000", "song0001"}  # never a held-out song
    assert scoring != conditioning


# -- end to end ---------------------------------------------------------------------------------------------
def test_autovoice_eval_writes_every_metric_for_every_system(corpus_dir: Path, tmp_path: Path,
                                                            untrained_model: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from autovoice.cli import main

    out = tmp_path / "quality.json"
    threads = torch.get_num_threads()
    try:
        code = main(["eval", "--corpus", str(corpus_dir), "--checkpoint", str(untrained_model),
                     "--json", str(out), "--max-pairs", "2", "--references", "1",
                     "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr()
    assert code == 0, printed.err[-3000:]
    assert "UNTRAINED" in printed.out and "envelope_swap" in printed.out
    result = json.loads(out.read_text())
    assert result["trained"] is False and result["pairs"] and len(result["pairs"]) == 2
    assert {p["group"] for p in result["pairs"]} == {SEEN, UNSEEN}
    for system in SYSTEMS:
        for group in (SEEN, UNSEEN):
            summary = result["summary"][system][group]
            assert set(METRICS) <= set(summary), f"{system}/{group} lacks {set(METRICS) - set(summary)}"
        for pair in result["pairs"]:
            assert set(METRICS) <= set(pair["systems"][system])
    for pair in result["pairs"]:
        oracle, swap = pair["systems"]["oracle"], pair["systems"]["envelope_swap"]
        assert oracle["mcd"] == 0.0 and oracle["duration_ratio"] == 1.0 and oracle["f0_median_cents"] < 5.0
        assert swap["f0_median_cents"] < 5.0 and swap["duration_ratio"] == 1.0
        assert swap["mcd_ratio"] < 1.0
        assert 1.0 <= oracle["dnsmos"] <= 5.0 and 1.0 <= pair["source_dnsmos"] <= 5.0
        assert math.isfinite(oracle["sim_target"]) and oracle["sim_target"] > oracle["sim_source"]
    assert len(result["checks"]) == 12  # six checks per target group
    md = out.with_suffix(".md").read_text()
    assert "| system | targets |" in md and "envelope_swap" in md
