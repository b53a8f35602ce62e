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


def test_select_takes_the_most_cosine_similar_prompt_of_any_class():
    pool = PromptPool()
    a, b = torch.zeros(1, 4, 2, 2), torch.zeros(1, 4, 2, 2)
    a[:, 0], b[:, 1] = 1.0, 1.0
    pool.add("a", a)
    pool.add("b", b)
    queries = torch.cat([b * 3 + 0.1, a * 0.5 + 0.05])
    assert pool.class_of(pool.select(queries)) == ["b", "a"]
