"""Pseudo-anomaly synthesis for OneNIP's restoration stream: CutPaste and DRAEM-style Perlin texture blends."""

from nipad.synth.cutpaste import cutpaste_rect, cutpaste_scar, paste_patch
from nipad.synth.jitter import color_jitter
from nipad.synth.perlin import perlin_blend, perlin_mask, perlin_noise
from nipad.synth.pseudo import PseudoAnomaly
from nipad.synth.texture_aug import TEXTURE_OPS, augment_texture
from nipad.synth.textures import FolderTextures, ImageBankTextures, TextureSource

__all__ = [
    "TEXTURE_OPS",
    "FolderTextures",
    "ImageBankTextures",
    "PseudoAnomaly",
    "TextureSource",
    "augment_texture",
    "color_jitter",
    "cutpaste_rect",
    "cutpaste_scar",
    "paste_patch",
    "perlin_blend",
    "perlin_mask",
    "perlin_noise",
]
