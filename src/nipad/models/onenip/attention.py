"""Building blocks shared by the encoder and the decoders: neighbour mask, positional embedding, attention, MLP.

Sequences are batch-first (B, HW, C) with token index = row * W + col, as the authors' flattening.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nipad.errors import ConfigError


def neighbour_mask(height: int, width: int, neighbour_size: int) -> Tensor:
    """Boolean (HW, HW) attention mask, True where attention is forbidden.

    A token may not attend to tokens inside the window |drow| <= n//2, |dcol| <= n//2 centred on itself (itself
    included): UniAD's defence against the identity shortcut. Rows are attending tokens, columns attended ones.
    """
    half = neighbour_size // 2
    rows = torch.arange(height).repeat_interleave(width)
    cols = torch.arange(width).repeat(height)
    near = ((rows[:, None] - rows[None, :]).abs() <= half) & ((cols[:, None] - cols[None, :]).abs() <= half)
    if near.all(dim=1).any():
        raise ConfigError(
            f"neighbour mask of size {neighbour_size} hides every token of a {height}x{width} feature map; "
            "use a larger --image-size"
        )
    return near


class LearnedPositionalEmbedding(nn.Module):
    """pos[h, w] = concat(col_embed[w], row_embed[h]) as DETR/UniAD; embeddings start U(0, 1)."""

    def __init__(self, height: int, width: int, dim: int) -> None:
        super().__init__()
        self.height, self.width = height, width
        self.row_embed = nn.Embedding(height, dim // 2)
        self.col_embed = nn.Embedding(width, dim - dim // 2)
        nn.init.uniform_(self.row_embed.weight)
        nn.init.uniform_(self.col_embed.weight)

    def forward(self) -> Tensor:
        cols = self.col_embed.weight[None, :, :].expand(self.height, -1, -1)
        rows = self.row_embed.weight[:, None, :].expand(-1, self.width, -1)
        return torch.cat([cols, rows], dim=-1).reshape(1, self.height * self.width, -1)


class Attention(nn.Module):
    """Multi-head attention with the positional embedding added to queries and keys, never to values."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)

    def forward(self, query: Tensor, key: Tensor, pos: Tensor, mask: Tensor | None) -> Tensor:
        return self.mha(query + pos, key + pos, key, attn_mask=mask, need_weights=False)[0]


class MLP(nn.Module):
    """Two linear layers with ReLU; `inner_dropout` follows the encoder FFN, the decoder MLP has none."""

    def __init__(self, dim: int, hidden: int, inner_dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Dropout(inner_dropout), nn.Linear(hidden, dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def init_xavier(module: nn.Module) -> None:
    """The authors' initialiser: xavier-uniform weights, zero biases for Linear and (transposed) convolutions."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
