"""Freed memory stays in the process: a loop that allocates and frees large blocks stops page-faulting."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from engine.allocator import ENVIRONMENT_SETTINGS, retain_freed_memory

# Frees and re-allocates blocks of 8-24 MiB, touching every page, as a conversion's chunks do; prints the
# minor page faults taken after the first round.
LOOP = """
import resource, sys
import numpy as np
if sys.argv[1] != "default":
    from engine.allocator import retain_freed_memory
    assert retain_freed_memory() is (sys.argv[1] == "retain")
def rounds(n):
    for _ in range(n):
        blocks = [np.ones(mib << 18, np.float32) for mib in (16, 24, 8, 16)]
        del blocks
rounds(1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds(10)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str, **env: str) -> int:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    proc = subprocess.run([sys.executable, "-c", LOOP, mode], capture_output=True, text=True, timeout=120,
                          env={**environ, **env})
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.strip())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the thresholds are glibc's")
def test_freed_blocks_are_reused_without_page_faults() -> None:
    default, retained = _faults("default"), _faults("retain")
    print(f"minor page faults over 10 rounds: {default} by default, {retained} with freed memory retained")
    assert default > 4096  # by default, rounds after the first fault in more than 16 MiB (4 KiB pages)
    assert retained < default / 20


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the thresholds are glibc's")
def test_malloc_settings_from_the_environment_are_kept() -> None:
    # A 4 MiB mmap threshold maps every block of the loop on allocation: it faults as much as the default.
    assert _faults("keep", MALLOC_MMAP_THRESHOLD_=str(4 << 20)) > 4096


def test_applying_twice_is_harmless() -> None:
    first = retain_freed_memory()
    assert retain_freed_memory() is first
    chosen = any(os.environ.get(k) for k in ENVIRONMENT_SETTINGS) or "glibc.malloc." in os.environ.get(
        "GLIBC_TUNABLES", "")
    assert first is (platform.libc_ver()[0] == "glibc" and not chosen)
