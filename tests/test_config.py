"""Configuration: the default file, environment overrides, unknown keys, and the engine-directory chain."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from engine.config import DEFAULT_CONFIG, DEFAULT_ENGINE_SUBDIR, Config, ConfigError, load_config, resolve_engine_dir


def test_default_config_matches_the_yaml() -> None:
    cfg = load_config(environ={})
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert isinstance(cfg, Config)
    assert cfg.to_dict() == raw  # every key of the file, no more, no less
    assert cfg.audio.sample_rate == 16000 and cfg.audio.hop_length == 160
    assert cfg.audio.frame_rate == cfg.audio.sample_rate / cfg.audio.hop_length
    m = cfg.model
    assert m.conditioning_dim == m.content_dim + m.pitch_dim + m.speaker_dim
    assert cfg.inference.max_input_seconds == 20 * 60


def test_env_overrides_single_keys_with_yaml_typed_values(tmp_path: Path) -> None:
    cfg = load_config(environ={
        "AUTOVOICE__INFERENCE__CHUNK_SECONDS": "4",
        "AUTOVOICE__RUNTIME__THREADS": "1",
        "AUTOVOICE__INFERENCE__F0_METHOD": "harvest",
        "AUTOVOICE__TENSORRT__VOICE_CONVERSION__ENGINE_DIR": "/opt/engines",
        "AUTOVOICE__TENSORRT__PROFILE_SECONDS__MAX": "12.5",
        "AUTOVOICE_DATA_DIR": str(tmp_path),
        "UNRELATED": "1",
    })
    assert cfg.inference.chunk_seconds == 4 and isinstance(cfg.runtime.threads, int) and cfg.runtime.threads == 1
    assert cfg.inference.f0_method == "harvest"
    assert cfg.tensorrt.voice_conversion.engine_dir == "/opt/engines"
    assert cfg.tensorrt.profile_seconds.max == 12.5 and cfg.tensorrt.profile_seconds.min == 0.5
    assert cfg.data_dir == tmp_path
    assert cfg.inference.overlap_seconds == 0.5  # untouched keys keep the file's values


def test_env_override_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOVOICE__INFERENCE__SEED", "77")
    assert load_config().inference.seed == 77


def test_other_config_file(tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_text("inference:\n  chunk_seconds: 2.0\n")
    cfg = load_config(path, environ={})
    assert cfg.inference.chunk_seconds == 2.0 and cfg.audio.sample_rate == 16000
    assert load_config(environ={"AUTOVOICE_CONFIG": str(path)}).inference.chunk_seconds == 2.0


@pytest.mark.parametrize("environ, named", [
    ({"AUTOVOICE__AUDIO__BOGUS": "1"}, "bogus"),
    ({"AUTOVOICE__NOSUCHSECTION__KEY": "1"}, "nosuchsection"),
    ({"AUTOVOICE__TENSORRT__VOICE_CONVERSION__ENGINE_DIRS": "/x"}, "engine_dirs"),
])
def test_unknown_env_key_is_refused_by_name(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_config(environ=environ)


def test_unknown_file_key_and_bad_files_are_refused(tmp_path: Path) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text("inference:\n  chunk_secs: 4\n")
    with pytest.raises(ConfigError, match="inference.*chunk_secs"):
        load_config(typo, environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml", environ={})
    broken = tmp_path / "broken.yaml"
    broken.write_text("audio: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken, environ={})
    with pytest.raises(ConfigError, match="section"):
        load_config(environ={"AUTOVOICE__AUDIO__SAMPLE_RATE__X": "1"})


# -- engine directory -------------------------------------------------------------------------------------
def _cfg(tmp_path: Path, nested: str | None = None, paths_level: str | None = None) -> Config:
    environ = {"AUTOVOICE_DATA_DIR": str(tmp_path / "data")}
    if nested is not None:
        environ["AUTOVOICE__TENSORRT__VOICE_CONVERSION__ENGINE_DIR"] = nested
    if paths_level is not None:
        environ["AUTOVOICE__PATHS__TENSORRT_ENGINES"] = paths_level
    return load_config(environ=environ)


def test_engine_dir_default_level(tmp_path: Path) -> None:
    assert resolve_engine_dir(_cfg(tmp_path)) == tmp_path / "data" / DEFAULT_ENGINE_SUBDIR


def test_engine_dir_paths_level_beats_default(tmp_path: Path) -> None:
    assert resolve_engine_dir(_cfg(tmp_path, paths_level=str(tmp_path / "p"))) == tmp_path / "p"


def test_engine_dir_nested_key_beats_paths_level(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, nested=str(tmp_path / "n"), paths_level=str(tmp_path / "p"))
    assert resolve_engine_dir(cfg) == tmp_path / "n"


def test_engine_dir_flag_overrides_all_three(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, nested=str(tmp_path / "n"), paths_level=str(tmp_path / "p"))
    assert resolve_engine_dir(cfg, override=tmp_path / "flag") == tmp_path / "flag"
    assert resolve_engine_dir(cfg, override=str(tmp_path / "flag")) == tmp_path / "flag"


def test_engine_dir_relative_paths_are_under_the_data_dir(tmp_path: Path) -> None:
    assert resolve_engine_dir(_cfg(tmp_path, nested="trt")) == tmp_path / "data" / "trt"


def test_engine_dir_relative_flag_is_under_the_working_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert resolve_engine_dir(_cfg(tmp_path, nested="trt"), override="built/engines") == work / "built" / "engines"


@pytest.mark.parametrize("level", ["flag", "nested", "paths", "default"])
def test_engine_dir_warning_names_the_missing_chosen_dir(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                         level: str) -> None:
    others = tmp_path / "exists"
    others.mkdir()
    chosen = tmp_path / f"missing-{level}"
    nested = str(chosen) if level == "nested" else (str(others) if level == "flag" else None)
    paths_level = str(chosen) if level == "paths" else (str(others) if level in ("flag", "nested") else None)
    cfg = _cfg(tmp_path, nested=nested, paths_level=paths_level)
    with caplog.at_level(logging.WARNING, logger="engine.config"):
        got = resolve_engine_dir(cfg, override=chosen if level == "flag" else None)
    expected = chosen if level != "default" else tmp_path / "data" / DEFAULT_ENGINE_SUBDIR
    assert got == expected
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(expected) in warnings[0].getMessage()
    assert "does not exist" in warnings[0].getMessage()


def test_engine_dir_no_warning_when_it_exists(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "n").mkdir()
    with caplog.at_level(logging.WARNING, logger="engine.config"):
        assert resolve_engine_dir(_cfg(tmp_path, nested=str(tmp_path / "n"))) == tmp_path / "n"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_switch_takes_only_true_or_false(tmp_path: Path) -> None:
    assert load_config(environ={"AUTOVOICE__RUNTIME__SPIN": "false"}).runtime.spin is False
    assert load_config(environ={}).runtime.spin is True
    with pytest.raises(ConfigError, match=r"runtime.spin: expected true or false, got 'sometimes'"):
        load_config(environ={"AUTOVOICE__RUNTIME__SPIN": "sometimes"})
