"""What a conversion refuses before it starts: options, output paths, voice names, devices; and where it
says a bad sample is."""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.audio import AudioSource, check_output_path, output_format
from engine.errors import ArtifactError, AudioInputError, VoiceError
from engine.options import ConvertOptions, check_options
from engine.voices import VoiceProfile, VoiceStore, resolve_voice, validate_name

CliRun = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.parametrize("options, says", [
    (ConvertOptions(transpose=math.nan), "transpose must be 'auto' or a number of semitones within +-36, not nan"),
    (ConvertOptions(transpose=math.inf), "not inf"),
    (ConvertOptions(transpose=-36.5), "not -36.5"),
    (ConvertOptions(transpose="up"), "not 'up'"),
    (ConvertOptions(seed=-1), "seed must be a whole number of at least 0, not -1"),
    (ConvertOptions(temperature=math.nan), "temperature must be a finite number of at least 0, not nan"),
    (ConvertOptions(temperature=math.inf), "not inf"),
    (ConvertOptions(temperature=-0.5), "not -0.5"),
    (ConvertOptions(sample_rate=0), "output sample rate 0 Hz is outside 8000-192000 Hz"),
    (ConvertOptions(sample_rate=192001), "192001 Hz"),
])
def test_options_no_conversion_can_honour_are_refused(options: ConvertOptions, says: str) -> None:
    with pytest.raises(AudioInputError, match=says.replace("+", r"\+").replace("(", r"\(")):
        check_options(options)


def test_options_at_their_limits_pass() -> None:
    for options in (ConvertOptions(), ConvertOptions(transpose="auto"), ConvertOptions(transpose=-36),
                    ConvertOptions(transpose=3.5, seed=0, temperature=0.0, sample_rate=8000),
                    ConvertOptions(seed=2**40, temperature=1.0, sample_rate=192000)):
        check_options(options)


def test_output_paths_that_cannot_take_a_new_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AudioInputError, match="is a folder; give the output file's path"):
        check_output_path(tmp_path)
    (tmp_path / "afile").write_text("")
    with pytest.raises(AudioInputError, match="afile is a file, not a folder"):
        check_output_path(tmp_path / "afile" / "sub" / "out.wav")
    with pytest.raises(AudioInputError, match="/dev/null is not a regular file; it is not replaced"):
        check_output_path("/dev/null")
    with pytest.raises(AudioInputError, match="output format 'mp3' is not supported"):
        check_output_path(tmp_path / "out.mp3")
    check_output_path(tmp_path / "new" / "out.flac", "flac")
    assert output_format(tmp_path / "out.ogg", None) == output_format(tmp_path / "x", "ogg")


def test_the_first_bad_sample_is_where_the_error_says(tmp_path: Path) -> None:
    sr = 8000
    for at in (0.06, 2.0, 35.0):
        x = np.full(40 * sr, 0.1, np.float32)
        x[int(at * sr)] = np.nan
        path = tmp_path / f"nan_{at}.wav"
        sf.write(path, x, sr, subtype="FLOAT")
        with AudioSource(path, 16000, 60.0) as src, pytest.raises(
                AudioInputError, match=f"NaN or infinite samples \\(the first at {at:.2f} s\\)"):
            for start in range(0, src.length, 30 * 16000):  # as the pipeline's first pass reads
                src.read(start - 320, start + 30 * 16000 + 320)


@pytest.mark.parametrize("name, says", [
    ("abc\n", "invalid voice name 'abc\\\\n'"),
    ("alice.wav", "a name ending in .wav would be read as a reference file"),
    ("bob.FLAC", "a name ending in .FLAC"),
    ("../x", "invalid voice name"),
])
def test_voice_names_that_would_be_misread_are_refused(name: str, says: str) -> None:
    with pytest.raises(VoiceError, match=says):
        validate_name(name)


def test_a_missing_reference_file_is_not_called_a_missing_input(tmp_path: Path) -> None:
    store = VoiceStore(tmp_path / "voices")
    with pytest.raises(VoiceError, match=r"voice 'alice.wav': no such reference file \(voice names never end"):
        resolve_voice("alice.wav", store)


def _profile(name: str) -> VoiceProfile:
    emb = np.ones(256, np.float32) / 16.0
    return VoiceProfile(name=name, embedding=emb, median_f0=220.0)


def test_a_voice_that_cannot_be_read_is_named_and_left_out_of_the_list(tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    store = VoiceStore(tmp_path / "voices")
    store.save(_profile("good"), clips=[])
    store.save(_profile("broken"), clips=[])
    (tmp_path / "voices" / "broken" / "profile.json").write_text("{not json")
    assert [v.name for v in store.profiles()] == ["good"]
    assert "voice broken: its profile in" in caplog.text and "is unreadable" in caplog.text
    with pytest.raises(VoiceError, match="voice broken: its profile .* is unreadable .*delete it and add it again"):
        store.get("broken")


def test_a_voice_stored_under_a_name_now_refused_can_still_be_deleted(tmp_path: Path) -> None:
    store = VoiceStore(tmp_path / "voices")
    (tmp_path / "voices" / "old.wav").mkdir(parents=True)
    (tmp_path / "voices" / "old.wav" / "profile.json").write_text("{}")
    store.delete("old.wav")
    assert not (tmp_path / "voices" / "old.wav").exists()
    with pytest.raises(VoiceError, match="invalid voice name '../x'"):
        store.delete("../x")


def test_a_user_voice_may_not_take_a_built_in_name(tmp_path: Path) -> None:
    VoiceStore(tmp_path / "builtin").save(_profile("en1"), clips=[])
    store = VoiceStore(tmp_path / "voices", tmp_path / "builtin")
    with pytest.raises(VoiceError, match="'en1' is a built-in voice; give the new voice another name"):
        store.add("en1", [tmp_path / "never_read.wav"])
    assert not (tmp_path / "voices" / "en1").exists()


def test_devices_this_process_cannot_use_are_refused() -> None:
    import torch

    from engine.runners import check_device

    assert check_device("cpu") == "cpu"
    with pytest.raises(ArtifactError, match="device 'banana' is not one of cpu, cuda, cuda:N"):
        check_device("banana")
    if not torch.cuda.is_available():
        with pytest.raises(ArtifactError, match="device cuda:0: no CUDA GPU is visible to this process"):
            check_device("cuda:0")


@pytest.mark.parametrize("extra, says", [
    (["--transpose", "nan"], "transpose must be 'auto' or a number of semitones"),
    (["--temperature", "inf"], "temperature must be a finite number of at least 0, not inf"),
    (["--seed", "-1"], "seed must be a whole number of at least 0, not -1"),
    (["--sample-rate", "0"], "output sample rate 0 Hz is outside"),
])
def test_convert_refuses_bad_options_in_one_line_before_loading_a_model(
        run_cli: CliRun, sung_clip: Callable[..., Path], tmp_path: Path, extra: list[str], says: str) -> None:
    clip = sung_clip(seconds=1.0, path=tmp_path / "in.wav")
    result = run_cli(["convert", clip, "-o", tmp_path / "out" / "out.wav", "--voice", "testvoice", *extra],
                     timeout=120)
    assert result.returncode == 1, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("autovoice: error: ")
    assert says in result.stderr
    assert not (tmp_path / "out").exists()


def test_convert_refuses_a_folder_or_a_device_as_its_output(run_cli: CliRun, sung_clip: Callable[..., Path],
                                                           tmp_path: Path) -> None:
    clip = sung_clip(seconds=1.0, path=tmp_path / "in.wav")
    for target, says in ((tmp_path, "is a folder; give the output file's path"),
                         (Path("/dev/null"), "/dev/null is not a regular file; it is not replaced")):
        result = run_cli(["convert", clip, "-o", target, "--voice", "testvoice"], timeout=120)
        assert result.returncode == 1 and says in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert Path("/dev/null").is_char_device()


def test_a_silent_or_tiny_reference_is_refused_without_the_encoders_warnings() -> None:
    import warnings

    from engine.speaker import SAMPLE_RATE, SpeakerEncoder

    encoder = SpeakerEncoder.shared()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the encoder's own divide-by-zero warnings would fail the test
        with pytest.raises(VoiceError, match="reference clip is silent; use a recording of the voice"):
            encoder.embed_clip(np.zeros(2 * SAMPLE_RATE, np.float32))
        with pytest.raises(VoiceError, match="reference clip is 0.00 s long; a voice needs at least 0.5 s"):
            encoder.embed_clip(np.full(1, 0.1, np.float32))
