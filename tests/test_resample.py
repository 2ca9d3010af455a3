"""The GEMM resampler against scipy's ``resample_poly`` with the same default filter."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly as scipy_resample_poly
from threadpoolctl import ThreadpoolController

from engine.resample import matrix_fits, phase_matrix, resample_filter, resample_poly

RATIOS = [(160, 441), (441, 160), (1, 3), (3, 1), (1, 2), (2, 1), (147, 160), (160, 147), (5, 4)]


@pytest.mark.parametrize(("up", "down"), RATIOS)
@pytest.mark.parametrize("n", [0, 1, 7, 1000, 48013])
def test_matches_scipy_with_the_same_filter(up: int, down: int, n: int) -> None:
    assert matrix_fits(up, down)  # these run as a matrix product
    x = np.random.default_rng(up * 1000 + down + n).uniform(-1.0, 1.0, n).astype(np.float32)
    want = scipy_resample_poly(x.astype(np.float64), up, down, window=np.array(resample_filter(up, down)))
    got = resample_poly(x, up, down)
    assert got.dtype == np.float32 and got.shape == want.shape == (-(-n * up // down),)
    if n:
        assert np.max(np.abs(got - want)) < 5e-6, float(np.max(np.abs(got - want)))


def test_a_ratio_with_a_large_matrix_runs_scipys_loop() -> None:
    up, down = 16000, 44101  # co-prime rates: the phase matrix would take gigabytes
    assert not matrix_fits(up, down)
    x = np.random.default_rng(3).uniform(-1.0, 1.0, 44101).astype(np.float32)
    built = phase_matrix.cache_info().misses
    got = resample_poly(x, up, down)
    assert phase_matrix.cache_info().misses == built  # no matrix was built
    want = scipy_resample_poly(x.astype(np.float64), up, down, window=np.array(resample_filter(up, down)))
    assert got.dtype == np.float32 and got.shape == want.shape and np.max(np.abs(got - want)) < 1e-6


def test_a_tone_passes_and_an_alias_is_stopped() -> None:
    t = np.arange(44100) / 44100
    y = resample_poly(np.sin(2 * np.pi * 1000 * t).astype(np.float32), 160, 441)  # 44.1 -> 16 kHz
    ty = np.arange(y.size) / 16000
    assert np.allclose(y[500:-500], np.sin(2 * np.pi * 1000 * ty)[500:-500], atol=2e-3)
    above = resample_poly(np.sin(2 * np.pi * 12000 * t).astype(np.float32), 160, 441)  # over the new Nyquist
    assert np.sqrt(np.mean(above[500:-500] ** 2)) < 1e-2


def test_phase_matrix_is_shared_and_read_only() -> None:
    matrix, _, p_out, d_in = phase_matrix(160, 441)
    assert phase_matrix(160, 441)[0] is matrix and not matrix.flags.writeable
    assert (p_out, d_in) == (160, 441) and matrix.dtype == np.float32


def test_blas_threads_are_restored_after_a_call() -> None:
    before = [i["num_threads"] for i in ThreadpoolController().info() if i["user_api"] == "blas"]
    resample_poly(np.ones(44100, np.float32), 160, 441)
    after = [i["num_threads"] for i in ThreadpoolController().info() if i["user_api"] == "blas"]
    assert after == before
