"""The reconstruction network shared by OneNIP and UniAD, on neck features (B, C, h, w).

Tokens -> (jitter in training) -> input projection -> neighbour-masked encoder -> decoder -> output projection.
OneNIP decodes with a normal image prompt (bidirectional decoder) and adds the refiner; UniAD uses learned queries.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nipad.models.onenip.attention import LearnedPositionalEmbedding, init_xavier, neighbour_mask
from nipad.models.onenip.bidirectional_decoder import BidirectionalDecoder
from nipad.models.onenip.encoder import Encoder
from nipad.models.onenip.model_config import ModelConfig
from nipad.models.onenip.refiner import Refiner
from nipad.models.onenip.uniad_decoder import QueryDecoder


def feature_jitter(tokens: Tensor, scale: float, prob: float) -> Tensor:
    """Add eps * (||f|| / C) * scale to every token f, eps ~ N(0, I) (UniAD's jitter; always fires at prob 1)."""
    if scale <= 0 or torch.rand(()) > prob:
        return tokens
    norm = tokens.norm(dim=-1, keepdim=True) / tokens.shape[-1]
    return tokens + torch.randn_like(tokens) * norm * scale


class ReconstructionNet(nn.Module):
    """Reconstructs the normal features of a query from its (possibly anomalous) features."""

    def __init__(self, config: ModelConfig, in_channels: int) -> None:
        super().__init__()
        self.config = config
        size, dim = config.feature_size, config.hidden_dim
        self.input_proj = nn.Linear(in_channels, dim)
        self.output_proj = nn.Linear(dim, in_channels)
        self.pos_embed = LearnedPositionalEmbedding(size, size, dim)
        self.encoder = Encoder(config.encoder_layers, dim, config.heads, config.ffn_dim, config.dropout)
        if config.uses_prompt:
            self.decoder: nn.Module = BidirectionalDecoder(
                config.decoder_layers, dim, config.heads, config.ffn_dim, config.dropout,
                static=config.decoder == "static", mask_final=config.mask_final_attention,
            )
        else:
            self.decoder = QueryDecoder(
                config.decoder_layers, size * size, dim, config.heads, config.ffn_dim, config.dropout
            )
        self.refiner = Refiner(in_channels, config.refiner_channels) if config.uses_refiner else None
        self.register_buffer("mask", neighbour_mask(size, size, config.window), persistent=False)
        init_xavier(self)

    @staticmethod
    def to_tokens(features: Tensor) -> Tensor:
        return features.flatten(2).transpose(1, 2)

    def encode(self, features: Tensor, jitter: bool = False) -> Tensor:
        """Neck features (B, C, h, w) -> encoded tokens (B, hw, dim); jitter only in training."""
        tokens = self.to_tokens(features)
        if jitter:
            tokens = feature_jitter(tokens, self.config.jitter_scale, self.config.jitter_prob)
        return self.encoder(self.input_proj(tokens), self.pos_embed(), self.mask)

    def decode(self, query: Tensor, prompt: Tensor | None = None) -> Tensor:
        """Encoded query tokens (+ encoded prompt tokens for OneNIP) -> reconstructed features (B, C, h, w)."""
        pos = self.pos_embed()
        if self.config.uses_prompt:
            if prompt is None:
                raise ValueError("OneNIP needs encoded prompt tokens")
            out = self.decoder(prompt, query, pos, self.mask)
        else:
            out = self.decoder(query, pos, self.mask)
        size = self.config.feature_size
        return self.output_proj(out).transpose(1, 2).reshape(out.shape[0], -1, size, size)

    def refine(self, error: Tensor) -> Tensor | None:
        """|reconstruction - input| -> refiner logits at the image size (None without a refiner)."""
        if self.refiner is None:
            return None
        size = self.config.image_size
        return self.refiner(error, (size, size))
