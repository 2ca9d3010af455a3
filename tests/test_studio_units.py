"""Studio pieces that need no Redis: audio checks, the pitch estimate, login parsing, calibration zips,
the engines table's reading of build results, ETAs, and the no-torch import rule."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_studio_support import REPO_ROOT, tone, wav_bytes

from studio import audio, engines, jobs, pitch
from studio.auth import parse_auth
from studio.calibration_check import check_upload, extract_zip
from studio.errors import StudioError


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_probe_accepts_audio_and_refuses_text_named_wav(tmp_path: Path) -> None:
    good = audio.probe(write(tmp_path / "a.wav", wav_bytes(tone(1.25, 22050), 22050)))
    assert (good.sample_rate, good.channels) == (22050, 1) and good.seconds == pytest.approx(1.25, abs=1e-3)
    with pytest.raises(StudioError, match=r"^lyrics\.wav is not an audio file \(it could not be decoded: "):
        audio.probe(write(tmp_path / "lyrics.wav", b"la la la\n" * 20))
    with pytest.raises(StudioError, match="the file is empty"):
        audio.probe(write(tmp_path / "empty.wav", b""))
    with pytest.raises(StudioError, match="too long"):
        audio.probe(tmp_path / "a.wav", max_seconds=1.0)


def test_probe_message_never_shows_the_temporary_path(tmp_path: Path) -> None:
    with pytest.raises(StudioError) as info:
        audio.probe(write(tmp_path / "x.wav", b"RIFF....WAVEjunk"))
    assert str(tmp_path) not in str(info.value)


def test_encode_decode_round_trip_and_mix(tmp_path: Path) -> None:
    x = tone(1.0, 16000).astype(np.float32)
    for fmt in ("wav", "flac", "ogg", "mp3"):
        path = audio.encode(x, 16000, tmp_path / f"t.{fmt}", fmt)
        y = audio.decode(path, 16000)
        assert abs(len(y) - len(x)) < 0.06 * 16000, fmt  # lossy codecs pad a little
    y = audio.decode(tmp_path / "t.wav", 16000)
    assert np.max(np.abs(y[: len(x)] - x)) < 1e-3
    mixed = audio.mix(np.ones(10, np.float32), np.ones((20, 2), np.float32), backing_gain_db=0.0)
    assert mixed.shape == (20, 2) and np.max(np.abs(mixed)) == pytest.approx(0.99)
    assert mixed[15, 0] < mixed[5, 0]  # the backing alone after the vocal ends
    with pytest.raises(StudioError, match="not supported"):
        audio.encode(x, 16000, tmp_path / "t.aac", "aac")


@pytest.mark.parametrize("f0", [110.0, 220.0, 440.0, 700.0])
def test_median_f0_of_a_vibrato_tone(f0: float) -> None:
    assert pitch.median_f0(tone(2.0, 16000, f0)) == pytest.approx(f0, rel=0.02)


def test_no_pitch_in_noise_and_transpose_suggestion() -> None:
    assert pitch.median_f0(np.random.default_rng(0).standard_normal(32000) * 0.1) is None
    assert pitch.suggest_transpose(220.0, 330.0) == 7
    assert pitch.suggest_transpose(440.0, 220.0) == -12
    assert pitch.suggest_transpose(None, 220.0) == 0
    assert pitch.suggest_transpose(50.0, 1000.0) == pitch.MAX_TRANSPOSE


def test_parse_auth() -> None:
    assert parse_auth("ann:pw1, bob:p:w") == [("ann", "pw1"), ("bob", "p:w")]
    assert parse_auth("") == [] and parse_auth(None) == []
    with pytest.raises(StudioError, match="user:password"):
        parse_auth("ann")
    with pytest.raises(StudioError, match="user:password"):
        parse_auth("ann:")


def test_calibration_zip_with_escaping_entry_is_refused_whole(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.wav", wav_bytes(tone(3.0), 16000))
        zf.writestr("../../outside.wav", wav_bytes(tone(3.0), 16000))
    with pytest.raises(StudioError, match="outside the zip"):
        extract_zip(archive, tmp_path / "out", 10 * 2**20)
    assert not (tmp_path / "outside.wav").exists()
    checked = check_upload([archive], tmp_path / "work", 2.0, 10 * 2**20)
    assert not checked.accepted and "outside the zip" in checked.rejected[0][1]


def test_calibration_zip_links_and_size_caps(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("voice.wav")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(StudioError, match="is a link"):
        extract_zip(archive, tmp_path / "out", 10 * 2**20)
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.wav", b"\0" * 3 * 2**20)
    with pytest.raises(StudioError, match="more than the limit"):
        extract_zip(big, tmp_path / "out2", 2**20)


def test_a_corrupt_zip_entry_is_rejected_by_name(tmp_path: Path) -> None:
    archive = tmp_path / "takes.zip"
    with zipfile.ZipFile(archive, "w") as zf:  # stored: the payload's bytes sit in the file as they are
        zf.writestr("good.wav", wav_bytes(tone(2.5), 16000))
        zf.writestr("bad.wav", wav_bytes(tone(2.5, 22050), 22050))
    raw = bytearray(archive.read_bytes())
    raw[raw.rindex(b"RIFF") + 100] ^= 0xFF  # inside bad.wav's samples: its CRC no longer matches
    archive.write_bytes(bytes(raw))
    files, rejected = extract_zip(archive, tmp_path / "out", 10 * 2**20)
    assert [name for _, name in files] == ["good.wav"]
    assert rejected == [("bad.wav", "corrupt in the zip (Bad CRC-32 for file 'bad.wav')")]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0000_good.wav"]


def test_calibration_summary_counts_and_reasons(tmp_path: Path) -> None:
    files = [write(tmp_path / "a.wav", wav_bytes(tone(2.5), 16000)),
             write(tmp_path / "short.wav", wav_bytes(tone(1.0), 16000)),
             write(tmp_path / "hiss.wav", wav_bytes(np.random.default_rng(1).standard_normal(48000) * 0.2, 16000))]
    checked = check_upload(files, tmp_path / "work", 2.0, 10 * 2**20)
    assert [name for _, _, name in checked.accepted] == ["a.wav"]
    reasons = dict(checked.rejected)
    assert reasons["short.wav"].startswith("too short (1.0 s")
    assert reasons["hiss.wav"].startswith("no pitched voice")
    assert "**1 file(s) accepted**, total duration 0 min 2.5 s; **2 rejected**" in checked.summary()


def test_engine_artifacts_are_found_wherever_the_build_result_puts_them() -> None:
    manifest = {"component": "vocoder", "backend": "onnxruntime", "precision": "int8",
                "created": "2030-01-02T03:04:05Z", "quality": {"snr_db": 41.234, "max_abs_error": 0.002, "note": "x"}}
    for result in ({"components": {"vocoder": manifest}}, {"engines": [manifest]}, [manifest], manifest):
        assert engines.artifacts(result) == [manifest]
    assert engines.parity_text(manifest) == "snr_db=41.2, max_abs_error=0.002"
    job_result = {"host": "h", "gpu": "cpu", "backend": "onnxruntime", "precision": "int8",  # engine.build's shape
                  "result": {"backend": "onnxruntime", "precision": "int8", "seconds": 12.5,
                             "components": {"vocoder": {"precision": "fp32", "int8": {"snr_db": 9.0}},
                                            "pitch_encoder": {"precision": "int8"}}}}
    found = {a["component"]: a for a in engines.artifacts(job_result)}
    assert (found["vocoder"]["backend"], found["vocoder"]["precision"]) == ("onnxruntime", "fp32")
    assert found["pitch_encoder"]["precision"] == "int8"
    assert engines.parity_text(found["vocoder"]) == "int8.snr_db=9"
    assert engines.built_at(manifest, None) == "2030-01-02 03:04:05 UTC"
    assert engines.built_at({}, 0.0) == ""


def test_eta_from_progress_and_from_place_in_line() -> None:
    now = time.time()
    running = {"status": "started", "started_at": now - 10.0,
               "progress": {"stage": "converting", "fraction": 0.25}}
    assert jobs.eta_seconds(running, None, 1, None) == pytest.approx(30.0, abs=0.5)
    queued = {"status": "queued"}
    assert jobs.eta_seconds(queued, 3, 2, 10.0) == pytest.approx(30.0)
    assert jobs.eta_seconds(queued, 0, 0, None) is None
    assert jobs.format_eta(75.0) == "~1 min 15 s" and jobs.format_eta(None) == ""
    assert jobs.describe_progress(queued, 0, 0, None).startswith("queued: next (no worker is running")


def test_studio_never_imports_torch_or_onnxruntime() -> None:
    code = ("import sys, json; import studio.app, autovoice.commands.studio; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'onnxruntime', 'tensorrt', 'scipy', 'soundfile') or m.startswith('engine.'))))")
    found = json.loads(subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                                      check=True, timeout=600).stdout)
    assert found == ["engine.config"]
