import torch

from nipad.models.matching import match_map


def test_a_token_present_in_a_prompt_of_its_class_matches_at_distance_zero_and_other_classes_are_ignored():
    torch.manual_seed(0)
    prompts = torch.randn(3, 8, 2, 2)
    owners = torch.tensor([0, 0, 1])
    query = prompts[1:2].clone()  # class 0's second prompt, token for token
    query[0, :, 0, 0] = prompts[2, :, 1, 1]  # one token copied from the class-1 prompt
    d = match_map(query, prompts, owners, torch.tensor([0]))
    assert d.shape == (1, 1, 2, 2)
    assert torch.allclose(d[0, 0].flatten()[1:], torch.zeros(3), atol=1e-4)
    class0 = torch.cdist(prompts[2, :, 1, 1][None], prompts[:2].flatten(2).transpose(1, 2).reshape(-1, 8)).min()
    assert torch.isclose(d[0, 0, 0, 0], class0, atol=1e-4) and d[0, 0, 0, 0] > 0.1
    # matched against class 1 the copied token is at distance zero instead
    assert match_map(query, prompts, owners, torch.tensor([1]))[0, 0, 0, 0] < 1e-3


def test_each_query_of_a_batch_is_matched_against_its_own_class():
    prompts = torch.stack([torch.zeros(4, 2, 2), torch.ones(4, 2, 2)])
    query = torch.zeros(2, 4, 2, 2)
    d = match_map(query, prompts, torch.tensor([0, 1]), torch.tensor([0, 1]))
    assert torch.allclose(d[0], torch.zeros(1, 2, 2)) and torch.allclose(d[1], torch.full((1, 2, 2), 2.0))
