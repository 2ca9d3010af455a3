"""Audio I/O: validation of every kind of bad input, exact streaming reads and resampling, atomic writes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.audio import (
    AtomicAudioWriter,
    AudioSource,
    StreamingResampler,
    load_clip,
    output_format,
    probe,
    resample,
)
from engine.errors import AudioInputError

SungClip = Callable[..., Path]
MAX_SECONDS = 1200.0


BadInput = Callable[[str, Path], tuple[Path, str]]
PROBE_REFUSES = ("not_audio", "empty", "truncated_wav", "missing", "too_long")
READ_REFUSES = ("truncated_flac", "nan", "inf")


# -- validation --------------------------------------------------------------------------------------------
def test_probe_accepts_a_valid_clip(sung_clip: SungClip) -> None:
    info = probe(sung_clip(seconds=1.5, sr=22050, channels=2), MAX_SECONDS)
    assert (info.sample_rate, info.frames, info.channels) == (22050, int(round(1.5 * 22050)), 2)
    assert info.duration == pytest.approx(1.5)


@pytest.mark.parametrize("kind", PROBE_REFUSES)
def test_probe_refuses(bad_input: BadInput, tmp_path: Path, kind: str) -> None:
    path, says = bad_input(kind, tmp_path)
    with pytest.raises(AudioInputError, match=says):
        probe(path, MAX_SECONDS)


@pytest.mark.parametrize("kind", READ_REFUSES)
def test_reading_refuses(bad_input: BadInput, tmp_path: Path, kind: str) -> None:
    path, says = bad_input(kind, tmp_path)
    with AudioSource(path, 16000, MAX_SECONDS) as src:
        with pytest.raises(AudioInputError, match=says):
            src.read(0, src.length)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(AudioInputError, match="not a file"):
        probe(tmp_path, MAX_SECONDS)


def test_header_only_wav(tmp_path: Path) -> None:
    path = tmp_path / "header.wav"
    sf.write(str(path), np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioInputError, match="no samples"):
        probe(path, MAX_SECONDS)


def cut_short(path: Path, keep_fraction: float = 0.5) -> Path:
    out = path.with_name(f"short_{path.name}")
    out.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep_fraction)])
    return out


@pytest.mark.parametrize("fmt, subtype", [("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "FLOAT"),
                                           ("AIFF", "PCM_16")])
def test_truncated_wav_is_refused(sung_clip: SungClip, fmt: str, subtype: str) -> None:
    """libsndfile quietly shortens a WAV whose data chunk runs past the end; the engine must not."""
    path = cut_short(sung_clip(seconds=1.0, fmt=fmt, subtype=subtype))
    assert 0 < sf.info(str(path)).frames < 16000  # soundfile itself does not complain
    with pytest.raises(AudioInputError, match="truncated"):
        probe(path, MAX_SECONDS)


def test_streamed_wav_with_unknown_length_is_accepted(sung_clip: SungClip) -> None:
    """Streaming writers put 0xFFFFFFFF in the length fields: that is not a truncation."""
    data = bytearray(sung_clip(seconds=1.0).read_bytes())
    data[4:8] = (0xFFFFFFFF).to_bytes(4, "little")
    at = data.find(b"data")
    data[at + 4: at + 8] = (0xFFFFFFFF).to_bytes(4, "little")
    path = sung_clip(seconds=1.0).with_name("streamed.wav")
    path.write_bytes(bytes(data))
    assert probe(path, MAX_SECONDS).frames == 16000


@pytest.mark.parametrize("fmt, subtype", [("FLAC", "PCM_16"), ("OGG", "VORBIS")])
@pytest.mark.parametrize("keep", [0.5, 0.8, 0.95])
def test_truncated_compressed_file_is_refused(sung_clip: SungClip, fmt: str, subtype: str, keep: float) -> None:
    path = cut_short(sung_clip(seconds=2.0, fmt=fmt, subtype=subtype), keep)
    with pytest.raises(AudioInputError, match="truncated"):
        with AudioSource(path, 16000, MAX_SECONDS) as src:
            src.read(0, src.length)


@pytest.mark.parametrize("fmt, subtype", [("FLAC", "PCM_16"), ("OGG", "VORBIS")])
def test_complete_compressed_file_reads_whole(sung_clip: SungClip, fmt: str, subtype: str) -> None:
    with AudioSource(sung_clip(seconds=2.0, fmt=fmt, subtype=subtype), 16000, MAX_SECONDS) as src:
        assert src.length == 32000
        x = src.read(0, src.length)
    assert float(np.sqrt(np.mean(x ** 2))) > 0.05


def test_nan_and_inf_samples(tmp_path: Path) -> None:
    for bad in (np.nan, np.inf, -np.inf):
        x = np.full(16000, 0.1, dtype=np.float32)
        x[12345] = bad
        path = tmp_path / "bad.wav"
        sf.write(str(path), x, 16000, subtype="FLOAT")
        with AudioSource(path, 16000, MAX_SECONDS) as src:
            with pytest.raises(AudioInputError, match="NaN or infinite"):
                src.read(0, src.length)


def test_longer_than_twenty_minutes(bad_input: BadInput, tmp_path: Path) -> None:
    path, _ = bad_input("too_long", tmp_path)
    assert sf.info(str(path)).frames == 21 * 60 * 8000
    with pytest.raises(AudioInputError, match="21.0 minutes is longer than the limit of 20 minutes"):
        probe(path, MAX_SECONDS)
    assert probe(path, 22 * 60).duration == pytest.approx(21 * 60)


@pytest.mark.parametrize("sr, ok", [(4000, False), (7999, False), (8000, True), (192000, True), (384000, False)])
def test_sample_rate_range(tmp_path: Path, sr: int, ok: bool) -> None:
    path = tmp_path / f"sr{sr}.wav"
    sf.write(str(path), 0.1 * np.ones(sr // 10, dtype=np.float32), sr)
    if ok:
        assert probe(path, MAX_SECONDS).sample_rate == sr
    else:
        with pytest.raises(AudioInputError, match="sample rate"):
            probe(path, MAX_SECONDS)


def test_channel_limit(tmp_path: Path) -> None:
    path = tmp_path / "many.wav"
    sf.write(str(path), np.zeros((100, 33), dtype=np.float32), 16000)
    with pytest.raises(AudioInputError, match="33 channels"):
        probe(path, MAX_SECONDS)


# -- reading -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sr", [8000, 16000, 22050, 44100, 48000, 96000, 192000])
def test_source_length_and_mono_mix(tmp_path: Path, sr: int) -> None:
    rng = np.random.default_rng(sr)
    n = int(0.731 * sr) + 3
    data = (0.1 * rng.standard_normal((n, 3))).astype(np.float32)
    path = tmp_path / "multi.wav"
    sf.write(str(path), data, sr, subtype="FLOAT")
    with AudioSource(path, 16000, MAX_SECONDS) as src:
        assert src.length == round(n * 16000 / sr)
        whole = src.read(0, src.length)
    expected = resample(data.mean(axis=1), sr, 16000)[: src.length]
    assert whole.dtype == np.float32 and whole.shape == (src.length,)
    assert np.allclose(whole, expected, atol=1e-5)


@pytest.mark.parametrize("sr", [16000, 44100, 48000, 8000])
def test_source_reads_in_pieces_equal_one_read(sung_clip: SungClip, sr: int) -> None:
    path = sung_clip(seconds=1.3, sr=sr, channels=2, subtype="FLOAT")
    with AudioSource(path, 16000, MAX_SECONDS) as src:
        whole = src.read(0, src.length)
        cuts = [0, 1, 999, 4000, 4001, 12345, src.length]
        pieces = np.concatenate([src.read(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)])
        beyond = src.read(src.length - 10, src.length + 50)
        before = src.read(-40, 10)
    assert np.allclose(pieces, whole, atol=1e-5)
    # Outside the file: silence (after resampling, only the filter's ringing of the faded edges).
    assert np.allclose(beyond[10:], 0.0, atol=1e-3) and np.allclose(beyond[:10], whole[-10:], atol=1e-5)
    assert np.allclose(before[:40], 0.0, atol=1e-3) and np.allclose(before[40:], whole[:10], atol=1e-5)


@pytest.mark.parametrize("sr", [16000, 44100])
def test_resident_source_serves_the_same_samples_from_one_decode(sung_clip: SungClip, sr: int,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = sung_clip(seconds=1.3, sr=sr, channels=2, subtype="FLOAT")
    ranges = [(0, 16000), (-40, 10), (4000, 12345), (20000, 20850)]
    with AudioSource(path, 16000, MAX_SECONDS) as streamed:
        expected = [streamed.read(a, b) for a, b in ranges]
    with AudioSource(path, 16000, MAX_SECONDS, resident_seconds=1.3) as src:
        decodes: list[tuple[int, int]] = []
        read_native = src._read_native
        monkeypatch.setattr(src, "_read_native", lambda a, b: decodes.append((a, b)) or read_native(a, b))
        got = [src.read(a, b) for a, b in ranges]
    assert len(decodes) == 1, decodes
    for (a, b), want, have in zip(ranges, expected, got, strict=True):
        assert have.shape == (b - a,) and have.dtype == np.float32
        assert np.allclose(have, want, atol=1e-3), (a, b, float(np.max(np.abs(have - want))))
    assert np.all(got[1][:40] == 0.0) and np.all(got[3][src.length - 20000:] == 0.0)


def test_source_longer_than_resident_limit_is_read_per_call(sung_clip: SungClip) -> None:
    path = sung_clip(seconds=1.3, sr=44100)
    with AudioSource(path, 16000, MAX_SECONDS, resident_seconds=1.0) as src:
        src.read(0, 1600)
        assert src._resident is None


def test_load_clip_mixes_to_mono(tmp_path: Path) -> None:
    t = np.arange(16000) / 16000
    left, right = 0.2 * np.sin(2 * np.pi * 300 * t), 0.1 * np.sin(2 * np.pi * 500 * t)
    path = tmp_path / "st.wav"
    sf.write(str(path), np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    assert np.allclose(load_clip(path, 16000), (left + right) / 2, atol=1e-6)


# -- resampling --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sr_out", [8000, 16000, 22050, 44100, 48000, 96000, 192000])
def test_streaming_resampler_equals_one_shot(sr_out: int) -> None:
    rng = np.random.default_rng(sr_out)
    x = (0.1 * rng.standard_normal(2 * 16000 + 37)).astype(np.float32)
    one = resample(x, 16000, sr_out)
    rs = StreamingResampler(16000, sr_out)
    parts, i = [], 0
    while i < x.size:
        size = int(rng.integers(1, 3000))
        parts.append(rs.push(x[i: i + size]))
        i += size
    parts.append(rs.flush())
    streamed = np.concatenate(parts)
    assert streamed.shape[0] >= round(x.size * sr_out / 16000)
    assert np.allclose(streamed[: one.shape[0]], one, atol=1e-6)


def test_resampling_keeps_a_tone() -> None:
    t = np.arange(16000) / 16000
    x = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    y = resample(x, 16000, 44100)
    ty = np.arange(y.size) / 44100
    inner = slice(2000, -2000)
    assert np.allclose(y[inner], np.sin(2 * np.pi * 1000 * ty)[inner], atol=2e-3)


# -- writing -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg"])
def test_atomic_writer_commit(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "sub" / f"out.{fmt}"
    x = (0.3 * np.sin(np.arange(12345) / 10)).astype(np.float32)
    with AtomicAudioWriter(out, 44100) as w:
        w.write(x[:5000])
        w.write(x[5000:])
        assert not out.exists()
        w.commit()
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]
    info = sf.info(str(out))
    assert info.frames == 12345 and info.samplerate == 44100 and info.channels == 1
    assert info.format == output_format(out, None)[0]


def test_atomic_writer_leaves_nothing_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    with pytest.raises(RuntimeError), AtomicAudioWriter(out, 16000) as w:
        w.write(np.zeros(1000, np.float32))
        raise RuntimeError("conversion failed")
    assert list(tmp_path.iterdir()) == []


def test_format_flag_beats_suffix(tmp_path: Path) -> None:
    assert output_format(tmp_path / "x.wav", "flac") == ("FLAC", "PCM_16")
    assert output_format(tmp_path / "x.ogg", None) == ("OGG", "VORBIS")
    assert output_format(tmp_path / "x", None) == ("WAV", "PCM_16")
    with pytest.raises(AudioInputError, match="not supported"):
        output_format(tmp_path / "x.mp3", None)


def test_a_truncated_mp3_is_called_undecodable_not_missing(tmp_path: Path) -> None:
    t = np.arange(32000) / 16000
    full = tmp_path / "full.mp3"
    sf.write(str(full), 0.3 * np.sin(2 * np.pi * 220 * t), 16000, format="MP3")
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(full.read_bytes()[:200])
    with pytest.raises(AudioInputError, match=r"^cut.mp3: not a readable audio file \(it could not be decoded: "
                                              r"truncated or corrupt\?\); use WAV, FLAC, OGG or MP3$"):
        probe(cut, 60.0)
