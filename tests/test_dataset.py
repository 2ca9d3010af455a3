"""The dataset recipe: a tiny corpus rendered by the real Debian voices, checked against its labels."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

if shutil.which("mbrola") is None:
    pytest.skip("the mbrola binary is not installed (run engine/data/install_voices.sh as root)",
                allow_module_level=True)

from engine.data.corpus import make_dataset  # noqa: E402
from engine.data.pho import read_pho  # noqa: E402
from engine.data.phoneset import INVENTORY, VOWELS  # noqa: E402
from engine.data.voices import VOICES  # noqa: E402

SEED = 7
N_SONGS = 3
KEYS = {"clip_id", "path", "speaker", "song_id", "kind", "split", "duration", "phones", "notes", "pho"}
PARALLEL = [v.name for v in VOICES if v.sings]
BASE_OF = {v.name: v.name.rsplit("_", 1)[0] for v in VOICES if v.engine == "mbrola" and v.rate != 16000}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "corpus", seed=SEED, n_songs=N_SONGS, n_speech=1,
                        workers=2, progress=False)


@pytest.fixture(scope="module")
def meta(corpus: Path) -> list[dict]:
    return [json.loads(line) for line in (corpus / "meta.jsonl").read_text().splitlines()]


def _by_song(meta: list[dict]) -> dict[str, dict[str, dict]]:
    songs: dict[str, dict[str, dict]] = defaultdict(dict)
    for rec in meta:
        songs[rec["song_id"]][rec["speaker"]] = rec
    return songs


def test_layout_and_labels(corpus: Path, meta: list[dict]) -> None:
    phones = json.loads((corpus / "phones.json").read_text())
    speakers = json.loads((corpus / "speakers.json").read_text())
    assert phones[0] == "_" and len(phones) <= 48 and phones == list(INVENTORY)
    assert set(speakers) == {v.name for v in VOICES}
    assert len(meta) == N_SONGS * len(PARALLEL) + len(VOICES)
    for rec in meta:
        assert set(rec) == KEYS
        audio, rate = sf.read(corpus / rec["path"])
        assert rate == 16000 and audio.ndim == 1 and np.isfinite(audio).all()
        assert rec["duration"] == pytest.approx(len(audio) / 16000)
        assert rec["path"] == f"clips/{rec['speaker']}/{rec['clip_id']}.wav"
        # phone spans tile the clip from 0 to its end with inventory phones
        spans = rec["phones"]
        assert spans[0][1] == 0.0 and spans[-1][2] == pytest.approx(rec["duration"], abs=1e-6)
        assert all(a[2] == pytest.approx(b[1]) and b[2] > b[1] for a, b in zip(spans, spans[1:], strict=False))
        assert {p for p, _, _ in spans} <= set(INVENTORY)
        assert (rec["kind"] == "sung") == bool(rec["notes"])
        if rec["pho"] is not None:
            durations = [s.dur_ms / 1000 for s in read_pho(corpus / rec["pho"])]
            assert durations == pytest.approx([b - a for _, a, b in spans], abs=1e-9)
        assert (rec["split"] == "heldout_voice") == speakers[rec["speaker"]]["heldout"]


def test_splits(meta: list[dict]) -> None:
    held_voices = {v.name for v in VOICES if v.heldout}
    train_speakers = {r["speaker"] for r in meta if r["split"] == "train"}
    assert held_voices and not held_voices & train_speakers
    held_songs = {r["song_id"] for r in meta if r["split"] == "heldout_song"}
    train_songs = {r["song_id"] for r in meta if r["split"] == "train"}
    assert held_songs and not held_songs & train_songs


def _envelope(audio: np.ndarray, hop: int = 16) -> np.ndarray:
    frames = audio[: len(audio) // hop * hop].reshape(-1, hop)
    env = np.log(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-7)
    return env - env.mean()


def _lag_ms(a: np.ndarray, b: np.ndarray, max_ms: int = 40) -> int:
    """Delay of ``b`` relative to ``a`` (1 ms resolution) maximizing the envelope correlation."""
    ea, eb = _envelope(a), _envelope(b)
    scores = [np.dot(ea[max(0, -k): len(ea) - max(0, k)], eb[max(0, k): len(eb) - max(0, -k)])
              for k in range(-max_ms, max_ms + 1)]
    return int(np.argmax(scores)) - max_ms


def test_parallel_renditions_equal_length_and_aligned(corpus: Path, meta: list[dict]) -> None:
    for song_id, recs in _by_song(meta).items():
        audio = {s: sf.read(corpus / recs[s]["path"])[0] for s in PARALLEL}
        assert len({len(a) for a in audio.values()}) == 1, song_id
        assert len({json.dumps(recs[s]["phones"]) for s in PARALLEL}) == 1
        # a pseudo-speaker (mbrola -l) keeps its base voice's timing to within a few milliseconds
        for shifted, base in BASE_OF.items():
            assert abs(_lag_ms(audio[base], audio[shifted])) <= 8, (song_id, shifted)
        # every parallel voice follows the same timeline (diphone databases segment a little differently)
        for speaker in PARALLEL:
            assert abs(_lag_ms(audio["us2"], audio[speaker])) <= 30, (song_id, speaker)


def test_note_f0_matches_audio(corpus: Path, meta: list[dict]) -> None:
    import parselmouth

    checked = 0
    for rec in meta:
        if not rec["notes"]:
            continue
        audio = sf.read(corpus / rec["path"])[0]
        pitch = parselmouth.Sound(audio, 16000).to_pitch_ac(time_step=0.005, pitch_floor=60, pitch_ceiling=700)
        f0, times = pitch.selected_array["frequency"], pitch.xs()
        vowels = [(a, b) for p, a, b in rec["phones"] if p in VOWELS]
        for start, end, hz in rec["notes"]:
            vowel_end = next(b for a, b in vowels if a <= start + 1e-6 < b)
            # the held part: after the glide into the note, before the consonants that close it
            lo, hi = start + 0.1, min(end, vowel_end) - 0.15 * (min(end, vowel_end) - start)
            frames = (times > lo) & (times < hi) & (f0 > 0)
            if hi - lo < 0.08 or frames.sum() < 10:
                continue
            deviation = 1200 * np.log2(f0[frames] / hz)
            deviation = deviation[np.abs(deviation) < 300]  # the tracker's octave slips
            assert abs(deviation.mean()) <= 15, (rec["clip_id"], start, hz, deviation.mean())
            checked += 1
    assert checked >= 10 * len(PARALLEL)


def test_same_seed_same_corpus(tmp_path: Path, corpus: Path, meta: list[dict]) -> None:
    subset = tuple(v for v in VOICES if v.name in ("us1_lo", "kal", "en1", "flite_slt"))
    again = make_dataset(tmp_path / "again", seed=SEED, n_songs=N_SONGS, n_speech=1, voices=subset,
                         workers=1, progress=False)
    names = {v.name for v in subset}
    expected = [r for r in meta if r["speaker"] in names]
    assert [json.loads(x) for x in (again / "meta.jsonl").read_text().splitlines()] == expected
    for rec in expected:
        assert np.array_equal(sf.read(again / rec["path"])[0], sf.read(corpus / rec["path"])[0])
        if rec["pho"]:
            assert (again / rec["pho"]).read_text() == (corpus / rec["pho"]).read_text()


def test_refuses_to_replace_a_folder_that_is_not_a_corpus(tmp_path: Path) -> None:
    from engine.errors import AutoVoiceError

    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(AutoVoiceError, match="not a corpus"):
        make_dataset(tmp_path, n_songs=1, progress=False)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_cli_registers_make_dataset() -> None:
    from autovoice.cli import build_parser

    args = build_parser().parse_args(["make-dataset", "--out", "x", "--seed", "3", "--songs", "5"])
    assert (args.out, args.seed, args.songs) == ("x", 3, 5) and callable(args.handler)
