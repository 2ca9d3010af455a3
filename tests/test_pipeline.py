"""File-to-file conversion in process: chunking, seeds, exact lengths, formats, channels, loudness, failures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.errors import AudioInputError, Cancelled
from engine.f0 import median_f0, suggest_transpose
from engine.pipeline import Converter, ConvertOptions
from engine.voices import VoiceProfile

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SungClip = Callable[..., Path]
MakeConverter = Callable[..., Converter]


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference ** 2) / max(float(np.sum((test - reference) ** 2)), 1e-20)))


def read(path: Path) -> tuple[np.ndarray, int]:
    data, sr = sf.read(str(path), dtype="float32")
    return data, sr


def assert_sane(y: np.ndarray) -> None:
    assert np.all(np.isfinite(y))
    assert float(np.sqrt(np.mean(y.astype(np.float64) ** 2))) > 1e-3, "output is silent"
    assert float(np.max(np.abs(y))) < 1.0, "output clips"


def test_chunked_conversion_matches_one_piece(make_converter: MakeConverter, sung_clip: SungClip,
                                              voice_profile: VoiceProfile, tmp_path: Path) -> None:
    """A 30 s legato clip (no silence to cut at) in 4 s chunks vs. in one piece: within 25 dB SNR."""
    clip = sung_clip(seconds=30.0, sr=16000, f0=196.0, seed=1)
    chunked = make_converter(AUTOVOICE__INFERENCE__CHUNK_SECONDS="4").convert_file(
        clip, tmp_path / "chunked.wav", voice_profile)
    whole = make_converter(AUTOVOICE__INFERENCE__CHUNK_SECONDS="31").convert_file(
        clip, tmp_path / "whole.wav", voice_profile)
    assert whole.chunks == 1
    assert chunked.chunks >= 8  # forced, overlapping cuts: 30 s / (4 s - overlap)
    a, _ = read(tmp_path / "chunked.wav")
    b, _ = read(tmp_path / "whole.wav")
    assert a.shape == b.shape == (480000,)
    assert_sane(b)
    assert snr_db(b, a) >= 25.0, snr_db(b, a)


def test_same_seed_same_output_other_seed_differs(make_converter: MakeConverter, sung_clip: SungClip,
                                                  voice_profile: VoiceProfile, tmp_path: Path) -> None:
    clip = sung_clip(seconds=2.0, sr=22050, seed=2)
    conv = make_converter()
    outs = {}
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        conv.convert_file(clip, tmp_path / f"{name}.wav", voice_profile, ConvertOptions(seed=seed, temperature=0.8))
        outs[name] = (tmp_path / f"{name}.wav").read_bytes()
    assert outs["a"] == outs["b"]
    assert outs["a"] != outs["c"]
    a, _ = read(tmp_path / "a.wav")
    c, _ = read(tmp_path / "c.wav")
    assert snr_db(a, c) < 40.0  # a different sample, not a rounding difference (PCM16 rounding is > 80 dB)


def test_seed_from_config_is_used(make_converter: MakeConverter, sung_clip: SungClip,
                                  voice_profile: VoiceProfile, tmp_path: Path) -> None:
    clip = sung_clip(seconds=1.0, seed=3)
    opts = ConvertOptions(temperature=0.8)
    make_converter(AUTOVOICE__INFERENCE__SEED="5").convert_file(clip, tmp_path / "cfg.wav", voice_profile, opts)
    make_converter().convert_file(clip, tmp_path / "arg.wav", voice_profile, ConvertOptions(temperature=0.8, seed=5))
    assert (tmp_path / "cfg.wav").read_bytes() == (tmp_path / "arg.wav").read_bytes()


@pytest.mark.parametrize("sr_in, sr_out", [
    (8000, None), (22050, None), (44100, None), (48000, None), (96000, None), (192000, None),
    (44100, 48000), (22050, 16000), (8000, 44100), (96000, 22050), (48000, 8000), (16000, 192000),
])
def test_exact_output_length(make_converter: MakeConverter, tmp_path: Path, voice_profile: VoiceProfile,
                             sung_clip: SungClip, sr_in: int, sr_out: int | None) -> None:
    seconds = 1.0 + 37.0 / sr_in  # not a whole number of frames at any rate
    clip = sung_clip(seconds=seconds, sr=sr_in, seed=4)
    n = sf.info(str(clip)).frames
    result = make_converter().convert_file(clip, tmp_path / "out.wav", voice_profile,
                                           ConvertOptions(sample_rate=sr_out))
    expected_sr = sr_out or sr_in
    info = sf.info(str(tmp_path / "out.wav"))
    assert info.samplerate == expected_sr == result.sample_rate
    assert info.frames == round(n * expected_sr / sr_in) == result.samples
    assert_sane(read(tmp_path / "out.wav")[0])


@pytest.mark.parametrize("name, fmt, container", [
    ("out.wav", None, "WAV"), ("out.flac", None, "FLAC"), ("out.ogg", None, "OGG"),
    ("out.wav", "flac", "FLAC"), ("out.audio", "ogg", "OGG"), ("out.flac", "wav", "WAV"),
])
def test_output_formats(make_converter: MakeConverter, sung_clip: SungClip, voice_profile: VoiceProfile,
                        tmp_path: Path, name: str, fmt: str | None, container: str) -> None:
    clip = sung_clip(seconds=1.2, sr=44100, seed=5)
    make_converter().convert_file(clip, tmp_path / name, voice_profile, ConvertOptions(format=fmt))
    info = sf.info(str(tmp_path / name))
    assert info.format == container
    assert info.frames == sf.info(str(clip)).frames
    assert_sane(read(tmp_path / name)[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@pytest.mark.parametrize("channels", [2, 8])
def test_multichannel_input_is_mixed_to_mono(make_converter: MakeConverter, sung_clip: SungClip,
                                             voice_profile: VoiceProfile, tmp_path: Path, channels: int) -> None:
    mono = sung_clip(seconds=1.5, sr=48000, seed=6, subtype="FLOAT")
    multi = sung_clip(seconds=1.5, sr=48000, seed=6, subtype="FLOAT", channels=channels)
    assert sf.info(str(multi)).channels == channels
    conv = make_converter()
    conv.convert_file(mono, tmp_path / "mono.wav", voice_profile)
    result = conv.convert_file(multi, tmp_path / "multi.wav", voice_profile)
    a, sr = read(tmp_path / "mono.wav")
    b, _ = read(tmp_path / "multi.wav")
    assert sr == 48000 and b.ndim == 1 and b.shape == a.shape
    assert result.input_seconds == pytest.approx(1.5)
    assert_sane(b)
    assert snr_db(a, b) > 40.0  # the same conversion as of the mono mix


def test_loudness_follows_the_input(make_converter: MakeConverter, tmp_path: Path, sung: Callable[..., np.ndarray],
                                    voice_profile: VoiceProfile) -> None:
    sr = 16000
    x = sung(3.0, sr, seed=7, level=0.5)
    env = np.concatenate([np.full(sr, 0.1), np.full(sr, 1.0), np.full(sr, 0.3)])  # -20 dB, 0 dB, -10 dB
    sf.write(str(tmp_path / "in.wav"), x * env, sr, subtype="FLOAT")
    make_converter().convert_file(tmp_path / "in.wav", tmp_path / "out.wav", voice_profile)
    y, _ = read(tmp_path / "out.wav")
    for second in range(3):
        part = slice(second * sr + 2000, (second + 1) * sr - 2000)
        level_in = 20 * np.log10(np.sqrt(np.mean((x * env)[part] ** 2)))
        level_out = 20 * np.log10(np.sqrt(np.mean(y[part].astype(np.float64) ** 2)))
        assert abs(level_out - level_in) < 3.0, (second, level_in, level_out)
    assert_sane(y)


def test_transpose_auto_moves_the_median_to_the_voice(make_converter: MakeConverter, sung_clip: SungClip,
                                                      voice_profile: VoiceProfile, tmp_path: Path) -> None:
    clip = sung_clip(seconds=2.0, sr=16000, f0=150.0, seed=8)
    lines: list[str] = []
    result = make_converter().convert_file(clip, tmp_path / "out.wav", voice_profile,
                                           ConvertOptions(transpose="auto"), log_line=lines.append)
    assert result.source_median_f0 is not None and result.f0_target is not None
    assert result.transpose == suggest_transpose(result.source_median_f0, voice_profile.median_f0)
    assert result.transpose > 0
    target = median_f0(result.f0_target)
    assert target is not None and abs(1200 * np.log2(target / voice_profile.median_f0)) <= 50.0
    assert any(line.startswith("transpose auto:") for line in lines)


def test_transpose_semitones(make_converter: MakeConverter, sung_clip: SungClip, voice_profile: VoiceProfile,
                             tmp_path: Path) -> None:
    clip = sung_clip(seconds=1.0, seed=9)
    result = make_converter().convert_file(clip, tmp_path / "out.wav", voice_profile, ConvertOptions(transpose=-5))
    assert result.f0_source is not None and result.f0_target is not None
    voiced = result.f0_source > 0
    assert np.allclose(result.f0_target[voiced], result.f0_source[voiced] * 2 ** (-5 / 12))
    assert np.all(result.f0_target[~voiced] == 0)


@pytest.mark.parametrize("case", ["silent", "nan", "inf", "bad_rate", "cancelled"])
def test_failures_leave_nothing_behind(make_converter: MakeConverter, sung_clip: SungClip,
                                       voice_profile: VoiceProfile, tmp_path: Path, case: str) -> None:
    src = tmp_path / "in"
    src.mkdir()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    clip = src / "in.wav"
    options = ConvertOptions()
    stop: Callable[[], bool] | None = None
    expected: type[Exception] = AudioInputError
    if case == "silent":
        sf.write(str(clip), np.zeros(16000, np.float32), 16000)
    elif case in ("nan", "inf"):
        x = np.full(16000, 0.1, np.float32)
        x[9000] = np.nan if case == "nan" else np.inf
        sf.write(str(clip), x, 16000, subtype="FLOAT")
    elif case == "bad_rate":
        clip = sung_clip(seconds=1.0)
        options = ConvertOptions(sample_rate=4000)
    else:
        clip = sung_clip(seconds=3.0)
        calls = iter([False, True])
        stop = lambda: next(calls, True)  # noqa: E731 - stop before the second chunk
        expected = Cancelled
    conv = make_converter(AUTOVOICE__INFERENCE__CHUNK_SECONDS="2") if case == "cancelled" else make_converter()
    with pytest.raises(expected):
        conv.convert_file(clip, out_dir / "out.wav", voice_profile, options, should_stop=stop)
    assert list(out_dir.iterdir()) == []


def test_channels_that_cancel_in_the_mono_mix_are_named(make_converter: MakeConverter, voice_profile: VoiceProfile,
                                                        tmp_path: Path) -> None:
    x = 0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)
    sf.write(str(tmp_path / "inverted.wav"), np.stack([x, -x], axis=1), 16000, subtype="FLOAT")
    with pytest.raises(AudioInputError, match="inverted.wav: the input is silent once its 2 channels are mixed to "
                                              "mono"):
        make_converter().convert_file(tmp_path / "inverted.wav", tmp_path / "out.wav", voice_profile)
