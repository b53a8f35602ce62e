import torch

from nipad.models.onenip.matching import TokenBank, coreset_tokens, match_map, prompt_tokens


def test_a_token_present_in_a_prompt_of_its_class_matches_at_distance_zero_and_other_classes_are_ignored():
    torch.manual_seed(0)
    prompts = torch.randn(3, 8, 2, 2)
    bank, owners = prompt_tokens(prompts, torch.tensor([0, 0, 1]))
    assert bank.shape == (12, 8) and owners.tolist() == [0] * 8 + [1] * 4
    query = prompts[1:2].clone()  # class 0's second prompt, token for token
    query[0, :, 0, 0] = prompts[2, :, 1, 1]  # one token copied from the class-1 prompt
    d = match_map(query, bank, owners, torch.tensor([0]))
    assert d.shape == (1, 1, 2, 2)
    assert torch.allclose(d[0, 0].flatten()[1:], torch.zeros(3), atol=1e-4)
    class0 = torch.cdist(prompts[2, :, 1, 1][None], prompts[:2].flatten(2).transpose(1, 2).reshape(-1, 8)).min()
    assert torch.isclose(d[0, 0, 0, 0], class0, atol=1e-4) and d[0, 0, 0, 0] > 0.1
    # matched against class 1 the copied token is at distance zero instead
    assert match_map(query, bank, owners, torch.tensor([1]))[0, 0, 0, 0] < 1e-3


def test_each_query_of_a_batch_is_matched_against_its_own_class():
    bank, owners = prompt_tokens(torch.stack([torch.zeros(4, 2, 2), torch.ones(4, 2, 2)]), torch.tensor([0, 1]))
    query = torch.zeros(2, 4, 2, 2)
    d = match_map(query, bank, owners, torch.tensor([0, 1]))
    assert torch.allclose(d[0], torch.zeros(1, 2, 2)) and torch.allclose(d[1], torch.full((1, 2, 2), 2.0))


def test_the_coreset_keeps_the_share_asked_and_covers_every_cluster_of_tokens():
    torch.manual_seed(0)
    centres = torch.tensor([[0.0] * 4, [10.0] * 4, [-10.0] * 4])
    points = (centres[torch.arange(300) % 3] + 0.01 * torch.randn(300, 4))  # 300 tokens in 3 tight clusters
    features = points.reshape(3, 10, 10, 4).permute(0, 3, 1, 2)  # (n, C, h, w)
    kept = coreset_tokens(features, 0.05, seed=0)
    assert kept.shape == (15, 4) and kept.dtype == torch.float16
    assert torch.cdist(centres, kept.float()).amin(dim=1).max() < 0.1  # each cluster has a token in the coreset


def test_the_token_bank_loads_float16_rows_and_names_its_classes():
    bank = TokenBank()
    assert len(bank) == 0 and bank.classes() == set()
    bank.load(torch.randn(5, 3), torch.tensor([0, 0, 2, 2, 2]))
    assert len(bank) == 5 and bank.tokens.dtype == torch.float16 and bank.classes() == {0, 2}
