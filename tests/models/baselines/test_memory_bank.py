"""Greedy coreset against a brute-force greedy on the full distance matrix; chunked nearest neighbours; eq. 7."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nipad.models.baselines.memory_bank import (
    gather_rows,
    greedy_coreset,
    nearest_neighbours,
    project,
    random_projection,
)
from nipad.models.baselines.patchcore import coreset_size, reweighted_score


def brute_force_greedy(points: np.ndarray, first: int, n: int) -> list[int]:
    """k-center greedy on the full pairwise distance matrix."""
    dist = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)
    picks = [first]
    while len(picks) < n:
        picks.append(int(dist[:, picks].min(axis=1).argmax()))
    return picks


def covering_radius(points: np.ndarray, picks) -> float:
    dist = np.linalg.norm(points[:, None, :] - points[None, list(picks), :], axis=-1)
    return float(dist.min(axis=1).max())


@pytest.mark.parametrize("projection_dim", [None, 6])
def test_greedy_coreset_matches_brute_force(projection_dim):
    rng = np.random.default_rng(0)
    points = rng.normal(size=(400, 16)).astype(np.float32)
    picks = greedy_coreset(torch.from_numpy(points), 40, projection_dim=projection_dim, seed=5).tolist()
    space = points if projection_dim is None else project(
        torch.from_numpy(points), random_projection(16, projection_dim, 5)).numpy()
    expected = brute_force_greedy(space.astype(np.float64), picks[0], 40)
    assert picks == expected
    radius = covering_radius(space, picks)
    assert radius == pytest.approx(covering_radius(space, expected), rel=1e-6)
    # greedy k-center: every pick was at least the final radius away from the picks before it
    chosen = space[picks]
    pairwise = np.linalg.norm(chosen[:, None] - chosen[None], axis=-1) + np.eye(len(picks)) * 1e9
    assert pairwise.min() >= radius * (1 - 1e-5)
    assert len(set(picks)) == 40


def test_greedy_coreset_float16_chunks_and_bounds():
    points = torch.randn(300, 8).half()
    picks = greedy_coreset(points, 10, seed=1)
    chunks = list(points.split([7, 100, 193]))
    assert greedy_coreset(chunks, 10, seed=1).tolist() == picks.tolist()
    assert greedy_coreset(points.float(), 10, seed=1).tolist() == picks.tolist()
    assert torch.equal(gather_rows(chunks, picks), points[picks])
    with pytest.raises(ValueError):
        greedy_coreset(points, 301)


def test_nearest_neighbours_chunked_equals_brute_force():
    g = torch.Generator().manual_seed(0)
    queries, bank = torch.randn(50, 7, generator=g), torch.randn(90, 7, generator=g)
    dist, index = nearest_neighbours(queries, bank.half(), k=3, query_chunk=16, bank_chunk=20)
    full = torch.cdist(queries, bank.half().float())
    expected_d, expected_i = full.topk(3, dim=1, largest=False)
    assert torch.equal(index, expected_i)
    assert torch.allclose(dist, expected_d, atol=1e-4)


def test_reweighted_score_is_eq7():
    g = torch.Generator().manual_seed(1)
    bank = torch.randn(30, 4, generator=g)
    queries = torch.randn(2, 5, 4, generator=g)
    dist, index = nearest_neighbours(queries.reshape(-1, 4), bank, k=1)
    dist, index = dist[:, 0].reshape(2, 5), index[:, 0].reshape(2, 5)
    got = reweighted_score(queries, dist, index, bank, b=4)
    for i in range(2):
        top = int(dist[i].argmax())
        m_star = bank[index[i, top]]
        support = torch.cdist(m_star[None], bank)[0].argsort()[:4]
        d = (queries[i, top] - bank[support]).norm(dim=1).double()
        weight = 1 - d[0].exp() / d.exp().sum()
        assert float(got[i]) == pytest.approx(float(weight * dist[i, top]), rel=1e-5)
    assert torch.equal(reweighted_score(queries, dist, index, bank, b=1), dist.max(dim=1).values)


def test_coreset_size_keeps_small_banks_whole():
    assert coreset_size(784, 0.01, 4096) == 784
    assert coreset_size(500_000, 0.01, 4096) == 5000
    assert coreset_size(100_000, 0.01, 4096) == 4096
