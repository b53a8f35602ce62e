import torch

from nipad.models.prompt_pool import PromptPool, central, descriptor, neighbours, spread


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


def test_spread_starts_with_the_most_typical_image_and_then_covers_the_rare_look():
    feats = torch.zeros(6, 3, 2, 2)
    feats[:, 0] = 1.0
    feats[:4, 1] = torch.tensor([0.0, 0.05, 0.1, 0.15]).view(4, 1, 1)  # four of one look
    feats[4:, 2] = torch.tensor([3.0, 3.2]).view(2, 1, 1)  # two of a rare look
    chosen = spread(feats, 2)
    assert chosen[0] == central(feats, 1)[0] and chosen[1] in (4, 5)
    assert sorted(spread(feats, 10)) == list(range(6))


def test_neighbours_are_the_most_similar_others_never_the_image_itself():
    feats = torch.rand(12, 5, 2, 2) ** 3
    near = neighbours(feats, 3)
    d = descriptor(feats)
    sim = d @ d.T
    for i in range(12):
        assert i not in near[i].tolist()
        others = sim[i].clone()
        others[i] = -2
        assert set(near[i].tolist()) == set(others.topk(3).indices.tolist())
    assert neighbours(feats[:1], 3).tolist() == [[0]]
