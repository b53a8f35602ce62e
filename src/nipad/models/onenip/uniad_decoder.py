"""UniAD's layer-wise query decoder: a learned query embedding per layer, no prompt (the ablation baseline)."""

from __future__ import annotations

from torch import Tensor, nn

from nipad.models.onenip.attention import MLP, Attention


class QueryDecoderLayer(nn.Module):
    """t = Q_l; t <- LN(t + Attn(t -> encoder)); t <- LN(t + Attn(t -> previous output)); t <- LN(t + FFN(t))."""

    def __init__(self, tokens: int, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.query_embed = nn.Embedding(tokens, dim)
        self.attn_encoder = Attention(dim, heads, dropout)
        self.attn_previous = Attention(dim, heads, dropout)
        self.ffn = MLP(dim, ffn_dim, inner_dropout=dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop1, self.drop2, self.drop3 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, encoded: Tensor, previous: Tensor, pos: Tensor, mask: Tensor | None) -> Tensor:
        t = self.query_embed.weight[None].expand(encoded.shape[0], -1, -1)
        t = self.norm1(t + self.drop1(self.attn_encoder(t, encoded, pos, mask)))
        t = self.norm2(t + self.drop2(self.attn_previous(t, previous, pos, mask)))
        return self.norm3(t + self.drop3(self.ffn(t)))


class QueryDecoder(nn.Module):
    """Stack of layer-wise query layers, out_0 = encoder output, then a final LayerNorm."""

    def __init__(self, layers: int, tokens: int, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(QueryDecoderLayer(tokens, dim, heads, ffn_dim, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, encoded: Tensor, pos: Tensor, mask: Tensor | None) -> Tensor:
        out = encoded
        for layer in self.layers:
            out = layer(encoded, out, pos, mask)
        return self.norm(out)


