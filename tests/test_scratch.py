"""Scratch folders of jobs: what a killed worker left is removed when a worker starts; nothing else is."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from workers.scratch import scratch_dir, sweep


def test_only_folders_of_stopped_workers_are_swept(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid runs nothing now
    left = tmp_path / f"autovoice-job-{gone.pid}-k1x"
    (left / "in").mkdir(parents=True)
    (left / "in" / "song.wav").write_bytes(b"\0" * 1024)
    (left / "out").mkdir()
    (left / "out" / ".song.wav.99.partial").write_bytes(b"\0")
    mine = tmp_path / f"autovoice-build-{os.getpid()}-a2b"
    mine.mkdir()
    command_line = tmp_path / "autovoice-calib-9ra2"  # `autovoice calibrate` in a terminal: no pid in the name
    command_line.mkdir()
    not_a_folder = tmp_path / f"autovoice-voice-{gone.pid}-zz"
    not_a_folder.write_text("")
    assert sweep(tmp_path) == [left]
    assert not left.exists() and mine.is_dir() and command_line.is_dir() and not_a_folder.is_file()


def test_a_scratch_folder_carries_its_process_id() -> None:
    with scratch_dir("job") as tmp:
        assert Path(tmp).name.startswith(f"autovoice-job-{os.getpid()}-")
    assert not Path(tmp).exists()
