"""OneNIP's bidirectional decoder: the query image's tokens and the normal prompt's tokens update each other.

Stream P starts as the encoded prompt tokens, stream I as the encoded query-image tokens (the authors' code calls
them "queries" and "keys"). In each block the prompt attends to the image, then the image attends to the updated
prompt; a final unmasked attention of P to I gives the reconstruction, read from the prompt stream
(the authors' code, github.com/gaobb/OneNIP, after their fix a6e80fa). `static=True` is the paper's unidirectional
ablation: the prompt tokens stay fixed and the image tokens only read from them. `mask_final=True` (not the authors')
neighbour-masks the final attention too, so no prompt token reads the query's tokens at and around its own position.
"""

from __future__ import annotations

from torch import Tensor, nn

from nipad.models.onenip.attention import MLP, Attention


class BidirectionalBlock(nn.Module):
    """P <- LN(P + Attn(P -> I)); P <- LN(P + MLP(P)); I <- LN(I + Attn(I -> P)). All attentions neighbour-masked."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float) -> None:
        super().__init__()
        self.cross_attn_prompt_to_image = Attention(dim, heads, dropout)
        self.cross_attn_image_to_prompt = Attention(dim, heads, dropout)
        self.mlp = MLP(dim, mlp_dim)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop1, self.drop2, self.drop3 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, prompt: Tensor, image: Tensor, pos: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        prompt = self.norm1(prompt + self.drop1(self.cross_attn_prompt_to_image(prompt, image, pos, mask)))
        prompt = self.norm2(prompt + self.drop2(self.mlp(prompt)))
        image = self.norm3(image + self.drop3(self.cross_attn_image_to_prompt(image, prompt, pos, mask)))
        return prompt, image


class StaticBlock(nn.Module):
    """Unidirectional ablation: I <- LN(I + Attn(I -> P)); I <- LN(I + MLP(I)); the prompt is never updated."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float) -> None:
        super().__init__()
        self.cross_attn_image_to_prompt = Attention(dim, heads, dropout)
        self.mlp = MLP(dim, mlp_dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, prompt: Tensor, image: Tensor, pos: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        image = self.norm1(image + self.drop1(self.cross_attn_image_to_prompt(image, prompt, pos, mask)))
        image = self.norm2(image + self.drop2(self.mlp(image)))
        return prompt, image


class BidirectionalDecoder(nn.Module):
    """Decode the query image's tokens with its prompt's tokens; returns the reconstruction tokens (B, HW, dim)."""

    def __init__(
        self, layers: int, dim: int, heads: int, mlp_dim: int, dropout: float, static: bool = False,
        mask_final: bool = False,
    ) -> None:
        super().__init__()
        self.mask_final = mask_final
        block = StaticBlock if static else BidirectionalBlock
        self.layers = nn.ModuleList(block(dim, heads, mlp_dim, dropout) for _ in range(layers))
        self.final_attn_prompt_to_image = None if static else Attention(dim, heads, dropout)
        self.final_drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, prompt: Tensor, image: Tensor, pos: Tensor, mask: Tensor | None) -> Tensor:
        if prompt.shape[0] != image.shape[0]:
            prompt = prompt.repeat(image.shape[0] // prompt.shape[0], 1, 1)
        for layer in self.layers:
            prompt, image = layer(prompt, image, pos, mask)
        if self.final_attn_prompt_to_image is None:
            return self.norm(image)
        final_mask = mask if self.mask_final else None
        prompt = prompt + self.final_drop(self.final_attn_prompt_to_image(prompt, image, pos, final_mask))
        return self.norm(prompt)
