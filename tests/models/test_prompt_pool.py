import torch

from nipad.models.prompt_pool import PromptPool, central, descriptor


def test_central_picks_the_most_typical_image():
    feats = torch.zeros(4, 3, 2, 2)
    feats[:, 0] = 1.0
    feats[3, 1] = 5.0  # the outlier
    assert central(feats, 1) in ([0], [1], [2])
    assert sorted(central(feats, 3)) == [0, 1, 2]


def test_central_matches_the_mean_pairwise_similarity():
    feats = torch.rand(30, 8, 3, 3) ** 3
    d = descriptor(feats)
    brute = (d @ d.T).mean(dim=1).argsort(descending=True)[:5].tolist()
    assert central(feats, 5) == brute


def test_prompt_pool_selects_the_most_similar_class():
    pool = PromptPool()
    a, b = torch.zeros(1, 8, 2, 2), torch.zeros(1, 8, 2, 2)
    a[:, 0], b[:, 1] = 1.0, 1.0
    pool.add("a", a)
    pool.add("b", b)
    pool.add("a", a * 2)
    query = torch.cat([b + 0.1, a * 3])
    index = pool.select(query)
    assert pool.class_of(index) == ["b", "a"]
    assert len(pool) == 3 and pool.class_names == ["a", "b"]
