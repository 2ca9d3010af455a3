"""Training helpers that decide what the model learns from (the stages themselves run in `autovoice train`)."""

from __future__ import annotations

import pytest
import torch

from engine.training.stages import MAX_PROFILE_CLIPS, sample_speaker_embeddings


def test_sampled_speaker_embeddings_average_a_few_of_the_speakers_own_clips() -> None:
    gen = torch.Generator().manual_seed(0)
    d = 16
    pool = torch.zeros(3, 32, d)
    # Speaker 0's clip j points along axis j (of 16): a sampled mean reveals which clips (and how many) it took.
    pool[0, :d] = torch.eye(d)
    pool[1, :5] = torch.randn(5, d, generator=gen)
    counts = torch.tensor([d, 5, 0])
    sizes = set()
    for _ in range(200):
        emb = sample_speaker_embeddings(pool, counts, torch.tensor([0, 1]), gen)
        assert emb.shape == (2, d)
        torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
        used = emb[0] > 0
        k = int(used.sum())
        assert 1 <= k <= MAX_PROFILE_CLIPS
        torch.testing.assert_close(emb[0][used], torch.full((k,), k ** -0.5))  # an equal-weight mean, no repeats
        sizes.add(k)
        # Speaker 1 draws from its own 5 clips only: its embedding lies in their span.
        basis = pool[1, :5]
        coef = torch.linalg.lstsq(basis.T, emb[1].unsqueeze(1)).solution
        torch.testing.assert_close((basis.T @ coef).squeeze(1), emb[1], atol=1e-5, rtol=1e-5)
    assert sizes == set(range(1, MAX_PROFILE_CLIPS + 1))  # every profile size from 1 to 8 is drawn


def test_a_speaker_without_pooled_clips_is_refused() -> None:
    with pytest.raises(ValueError, match="speaker 2 has no pooled embeddings"):
        sample_speaker_embeddings(torch.zeros(3, 4, 8), torch.tensor([4, 4, 0]), torch.tensor([2]),
                                  torch.Generator().manual_seed(0))


def test_zero_max_clips_gives_one_fixed_mean_per_voice() -> None:
    gen = torch.Generator().manual_seed(1)
    pool = torch.randn(2, 6, 8, generator=gen)
    counts = torch.tensor([6, 3])
    emb = sample_speaker_embeddings(pool, counts, torch.tensor([0, 1, 1]), gen, max_clips=0)
    mean = torch.stack([pool[0].mean(0), pool[1, :3].mean(0)])
    mean = mean / mean.norm(dim=1, keepdim=True)
    torch.testing.assert_close(emb, mean[[0, 1, 1]])


def test_a_speaker_cache_from_the_earlier_recipe_is_refused_with_the_fix(tmp_path) -> None:
    import numpy as np

    from engine.config import ConfigError, load_config
    from engine.training.run import TrainPlan, speaker_pool

    work = tmp_path / "work"
    work.mkdir()
    np.savez(work / "speakers.npz", names=np.array(["a"]), embeddings=np.zeros((1, 256), np.float32))
    with pytest.raises(ConfigError, match="delete it and train again"):
        speaker_pool(load_config(environ={}), TrainPlan(corpus=tmp_path / "corpus", work=work, out=tmp_path / "x.pt"))
