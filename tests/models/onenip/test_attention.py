import pytest
import torch

from nipad.errors import ConfigError
from nipad.models.onenip.attention import LearnedPositionalEmbedding, neighbour_mask


def test_neighbour_mask_hides_the_window_centred_on_each_token():
    mask = neighbour_mask(14, 14, 7)
    assert mask.shape == (196, 196)
    for r, c in [(0, 0), (7, 7), (13, 5)]:
        row = mask[r * 14 + c].reshape(14, 14)
        expected = torch.zeros(14, 14, dtype=torch.bool)
        expected[max(0, r - 3): r + 4, max(0, c - 3): c + 4] = True
        assert torch.equal(row, expected)
    assert mask.diagonal().all()
    assert torch.equal(mask, mask.T)


def test_neighbour_mask_that_hides_everything_is_refused():
    with pytest.raises(ConfigError, match="hides every token"):
        neighbour_mask(4, 4, 8)


def test_positional_embedding_is_col_then_row():
    pe = LearnedPositionalEmbedding(3, 5, 8)
    pos = pe()
    assert pos.shape == (1, 15, 8)
    r, c = 2, 4
    assert torch.equal(pos[0, r * 5 + c, :4], pe.col_embed.weight[c])
    assert torch.equal(pos[0, r * 5 + c, 4:], pe.row_embed.weight[r])
