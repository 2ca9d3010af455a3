"""Calibration sets: validated audio, voiced fixed-length crops, NPZ layout, safe zips, refused pickles."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

from engine.calibration import (
    MIN_VOICED_FRACTION,
    CalibrationError,
    examples,
    load_calibration,
    make_calibration_set,
    voiced_crop_starts,
)
from engine.export import safe_zip
from engine.export.safe_zip import UnsafeArchiveError, extract_zip
from engine.export.specs import component_specs
from engine.models.inference import COMPONENT_IO

pytest_plugins = ["engines_fixtures"]


def test_summary_counts_files_and_names_each_rejection(calibration: tuple[Path, dict]) -> None:
    path, summary = calibration
    assert summary["files"] == 2 and summary["crops"] == 4
    assert summary["total_seconds"] == pytest.approx(4.0, abs=0.01)
    assert summary["calibrated_seconds"] == pytest.approx(4.0, abs=0.01)
    reasons = {r["file"]: r["reason"] for r in summary["rejected"]}
    assert "shorter than one 1 s crop" in reasons["too_short.wav"]
    assert "8000 Hz is below the model's 16000 Hz" in reasons["phone.wav"]
    assert "not an audio file" in reasons["lyrics.txt"]
    assert summary["voices"] == ["testvoice"] and len(summary["sha256"]) == 64
    assert summary["output"] == str(path)


def test_npz_holds_every_components_real_inputs(calibration: tuple[Path, dict], ckpt, eng_cfg) -> None:
    path, _ = calibration
    model, audio = ckpt.model.model_config, ckpt.model.audio_config
    with np.load(path, allow_pickle=False) as npz:
        keys = set(npz.files)
    assert {f"{c}/{n}" for c, (ins, _) in COMPONENT_IO.items() for n in ins} <= keys
    data = load_calibration(path, component_specs(model, audio), audio.hop_length, ckpt.sha256)
    frames = int(round(eng_cfg.quantization.crop_seconds * audio.sample_rate / audio.hop_length))
    n = 4
    expected = {
        "content_encoder/audio": (n, frames * audio.hop_length),
        "pitch_encoder/f0": (n, frames), "pitch_encoder/voiced": (n, frames),
        "flow_decoder/noise": (n, model.latent_dim, frames), "flow_decoder/mask": (n, 1, frames),
        "flow_decoder/conditioning": (n, model.conditioning_dim, frames), "flow_decoder/temperature": (n, 1),
        "mel_projection/latent": (n, model.latent_dim, frames),
        "vocoder/mel": (n, audio.n_mels, frames), "vocoder/f0": (n, frames), "vocoder/phase0": (n, 1),
        "vocoder/noise": (n, 1, frames * audio.hop_length),
    }
    assert {k: v.shape for k, v in data.items()} == expected
    assert all(v.dtype == np.float32 for v in data.values())
    # Voiced crops, never padding: every row is mostly voiced and has signal to its last sample.
    assert np.all(np.mean(data["pitch_encoder/f0"] > 0, axis=1) >= MIN_VOICED_FRACTION)
    tail = data["content_encoder/audio"][:, -audio.hop_length:]
    assert np.all(np.sqrt(np.mean(tail**2, axis=1)) > 1e-3)
    # The recorded downstream inputs are what the pipeline feeds: the content + pitch + speaker stack.
    spk = data["flow_decoder/conditioning"][:, model.content_dim + model.pitch_dim:, :]
    assert np.allclose(spk, spk[:, :, :1])
    np.testing.assert_array_equal(data["vocoder/f0"], data["pitch_encoder/f0"])
    feed = next(examples(data, component_specs(model, audio)["flow_decoder"]))
    assert feed["noise"].shape == (1, model.latent_dim, frames) and feed["temperature"].shape == (1,)


def test_crop_starts_pick_mostly_voiced_stretches() -> None:
    f0 = np.zeros(1000)
    f0[100:300] = 220.0
    f0[500:550] = 220.0  # half voiced: not enough
    assert voiced_crop_starts(f0, 100) == [100, 200]
    assert voiced_crop_starts(np.zeros(50), 100) == []


def test_a_calibration_set_from_another_checkpoint_is_refused(calibration, ckpt) -> None:
    with pytest.raises(CalibrationError, match="recorded with checkpoint"):
        load_calibration(calibration[0], checkpoint_sha256="1" * 64)


def test_malicious_npz_with_object_arrays_is_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.npz"
    np.savez(evil, **{"content_encoder/audio": np.array([{"run": "os.system"}], dtype=object)})
    with pytest.raises(CalibrationError, match="object arrays"):
        load_calibration(evil)
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(CalibrationError, match="not an NPZ archive"):
        load_calibration(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", weights=np.zeros(3, np.float32))
    with pytest.raises(CalibrationError, match="not an AutoVoice calibration set"):
        load_calibration(tmp_path / "other.npz")


def test_cli_refuses_a_pickled_npz_in_one_line(run_cli, tmp_path: Path) -> None:
    evil = tmp_path / "evil.npz"
    np.savez(evil, **{"content_encoder/audio": np.array([object()], dtype=object)})
    result = run_cli(["build-engines", "--backend", "onnxruntime", "--precision", "int8", "--calibration", evil,
                      "--engine-dir", tmp_path / "engines"])
    assert result.returncode == 1
    assert "object arrays" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "engines" / "onnxruntime" / "int8").exists()


def test_files_that_are_not_calibration_sets_get_their_own_reason(tmp_path: Path) -> None:
    (tmp_path / "notes.npz").write_text("la la la\n")
    with pytest.raises(CalibrationError, match="notes.npz: not an NPZ archive"):
        load_calibration(tmp_path / "notes.npz")
    np.save(tmp_path / "plain.npy", np.zeros(3, np.float32))
    with pytest.raises(CalibrationError, match="plain.npy: not an NPZ archive"):
        load_calibration(tmp_path / "plain.npy")


def _edited(source: Path, out: Path, **changes: np.ndarray) -> Path:
    with np.load(source, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    np.savez(out, **(arrays | changes))
    return out


@pytest.mark.parametrize("changes, says", [
    ({"meta/info": np.array("not json")}, "meta/info is not the JSON record"),
    ({"meta/info": np.array("[1, 2]")}, "meta/info is not the JSON record"),
    ({"pitch_encoder/f0": np.zeros(4, np.float32)}, r"pitch_encoder/f0 has shape \(4,\); each example needs"),
    ({"pitch_encoder/f0": np.full((4, 1), 220.0, np.float32)}, "each example needs at least 50 frames"),
    ({"pitch_encoder/f0": np.zeros((4, 100), np.float32)}, "no example has a voiced frame"),
    ({"vocoder/mel": np.full((4, 80, 100), np.nan, np.float32)}, "vocoder/mel holds NaN or infinite values"),
    ({"vocoder/mel": np.zeros((4, 80, 100), np.float64)}, "vocoder/mel must be float32, is float64"),
])
def test_a_damaged_calibration_set_is_refused_with_the_reason(calibration, tmp_path: Path, changes, says: str
                                                              ) -> None:
    with pytest.raises(CalibrationError, match=says):
        load_calibration(_edited(calibration[0], tmp_path / "edited.npz", **changes))


def test_calibration_arguments_are_checked_before_any_work(eng_cfg, calib_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="the most crops to keep must be at least 1, not -1"):
        make_calibration_set(eng_cfg, calib_dir, tmp_path / "c.npz", max_crops=-1)
    with pytest.raises(CalibrationError, match="is a folder; give the calibration file's path"):
        make_calibration_set(eng_cfg, calib_dir, tmp_path)
    (tmp_path / "afile").write_text("")
    with pytest.raises(CalibrationError, match="afile is a file, not a folder"):
        make_calibration_set(eng_cfg, calib_dir, tmp_path / "afile" / "c.npz")


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_zip_entries_that_clash_or_are_corrupt_are_refused(tmp_path: Path) -> None:
    wav = b"RIFF....WAVE"
    for name, entries, says in [("twice", [("a.wav", wav), ("a.wav", wav)], "have the same name"),
                                ("file_then_dir", [("x", wav), ("x/y.wav", wav)], "is a file and also the folder"),
                                ("dir_then_file", [("x/y.wav", wav), ("x", wav)], "is a file and also the folder")]:
        archive = tmp_path / f"{name}.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            for entry, data in entries:
                zf.writestr(entry, data)
        out = tmp_path / f"out_{name}"
        with pytest.raises(UnsafeArchiveError, match=says):
            extract_zip(archive, out)
        assert not out.exists()
    archive = tmp_path / "badcrc.zip"
    with zipfile.ZipFile(archive, "w") as zf:  # stored, so the payload's bytes sit in the file as they are
        zf.writestr("a.wav", b"RIFF" + bytes(200))
    raw = bytearray(archive.read_bytes())
    raw[raw.index(b"RIFF") + 10] ^= 0xFF
    archive.write_bytes(bytes(raw))
    with pytest.raises(UnsafeArchiveError, match=r"entry 'a.wav' is corrupt \(Bad CRC-32"):
        extract_zip(archive, tmp_path / "out_crc")


def _zip(path: Path, entries: dict[str, bytes], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def test_unsafe_zips_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    wav = b"RIFF....WAVE"
    cases = {
        "dotdot": ({"songs/../../evil.wav": wav}, None, "points outside the archive's folder"),
        "absolute": ({"/tmp/evil.wav": wav}, None, "points outside the archive's folder"),
        "drive": ({"C:/evil.wav": wav}, None, "points outside the archive's folder"),
        "backslash": ({"..\\evil.wav": wav}, None, "points outside the archive's folder"),
        "symlink": ({"a.wav": wav}, "link.wav", "symbolic link"),
        "bomb": ({"bomb.wav": b"\0" * (8 << 20)}, None, "expands"),
    }
    for name, (entries, link, message) in cases.items():
        out = tmp_path / f"out_{name}"
        with pytest.raises(UnsafeArchiveError, match=message):
            extract_zip(_zip(tmp_path / f"{name}.zip", entries, link), out)
        assert not out.exists() or not any(out.rglob("*")), name
    assert not (tmp_path.parent / "evil.wav").exists()


def test_zip_caps_on_entries_and_total_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    many = _zip(tmp_path / "many.zip", {f"{i}.wav": b"x" for i in range(12)})
    monkeypatch.setattr(safe_zip, "MAX_ENTRIES", 10)
    with pytest.raises(UnsafeArchiveError, match="12 entries is more than the limit of 10"):
        extract_zip(many, tmp_path / "out")
    monkeypatch.setattr(safe_zip, "MAX_ENTRIES", 1000)
    monkeypatch.setattr(safe_zip, "MAX_TOTAL_BYTES", 5)
    with pytest.raises(UnsafeArchiveError, match="uncompressed is more than the limit"):
        extract_zip(many, tmp_path / "out2")


def test_calibration_from_a_zip(eng_cfg, calib_dir: Path, voice_profile, tmp_path: Path) -> None:
    archive = tmp_path / "takes.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(calib_dir / "alto.wav", "takes/alto.wav")
        zf.writestr("__MACOSX/takes/._alto.wav", b"resource fork")
        zf.writestr("takes/notes.md", b"# notes")
    summary = make_calibration_set(eng_cfg, archive, tmp_path / "c.npz", voices=[voice_profile], max_crops=1)
    assert summary["files"] == 1 and summary["crops"] == 1
    assert [r["file"] for r in summary["rejected"]] == ["takes/notes.md"]


def test_cli_calibrate_refuses_a_zip_that_escapes(run_cli, tmp_path: Path) -> None:
    archive = _zip(tmp_path / "evil.zip", {"../../escape.wav": b"RIFF"})
    result = run_cli(["calibrate", archive, "-o", tmp_path / "c.npz"])
    assert result.returncode == 1, result.stderr
    assert "points outside the archive's folder" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "c.npz").exists()


def test_no_usable_audio_is_one_clear_error(eng_cfg, voice_profile, tmp_path: Path, sung_clip) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    sung_clip(seconds=0.5, path=folder / "short.wav")
    with pytest.raises(CalibrationError, match="no usable calibration audio"):
        make_calibration_set(eng_cfg, folder, tmp_path / "c.npz", voices=[voice_profile])
    with pytest.raises(CalibrationError, match="not found"):
        make_calibration_set(eng_cfg, tmp_path / "missing", tmp_path / "c.npz", voices=[voice_profile])
    assert not (tmp_path / "c.npz").exists()
