"""Self-attention encoder with the neighbour-masked attention (DETR-style post-norm layers)."""

from __future__ import annotations

from torch import Tensor, nn

from nipad.models.onenip.attention import MLP, Attention


class EncoderLayer(nn.Module):
    """s = LN(s + Drop(Attn(s, s, mask))); s = LN(s + Drop(FFN(s)))."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = Attention(dim, heads, dropout)
        self.ffn = MLP(dim, ffn_dim, inner_dropout=dropout)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, tokens: Tensor, pos: Tensor, mask: Tensor | None) -> Tensor:
        tokens = self.norm1(tokens + self.drop1(self.self_attn(tokens, tokens, pos, mask)))
        return self.norm2(tokens + self.drop2(self.ffn(tokens)))


class Encoder(nn.Module):
    """A stack of encoder layers; query images and prompts go through the same weights (attention stays per sample)."""

    def __init__(self, layers: int, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, ffn_dim, dropout) for _ in range(layers))

    def forward(self, tokens: Tensor, pos: Tensor, mask: Tensor | None) -> Tensor:
        for layer in self.layers:
            tokens = layer(tokens, pos, mask)
        return tokens
