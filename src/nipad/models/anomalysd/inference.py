"""AnomalySD inference (paper sections 4.2-4.3): inpaint the image under every multi-scale mask and its
prototype-guided mask with SD, started from the image's own noised latent at step lambda * T, and score the
perceptual distance between the image and each inpainting inside its mask.

S^(k) = sum_ij M_ij^(k) * D(x, x^_ij^(k)) (eq. 18), S_ms = their harmonic mean over scales (eq. 19),
S_pg = M^(p) * D(x, x^(p)) (eq. 20), S_map = (1 - alpha) S_ms + alpha S_pg (eq. 21), Gaussian-blurred (sigma 4);
the image score is its maximum. The class of a test image (its prompt condition, lambda and prototype bank) is
that of the most similar shot in a PromptPool, as OneNIP picks its prompt, so it need not be given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar, TypedDict, cast

import torch
from torch import Tensor, nn
from torchvision.transforms.functional import gaussian_blur

from nipad.models.anomalysd.config import MODEL, AnomalySDConfig
from nipad.models.anomalysd.masks import multiscale_masks
from nipad.models.anomalysd.perceptual import Perceptual, distance_map
from nipad.models.anomalysd.pipeline import SDParts
from nipad.models.anomalysd.prototypes import build_bank, error_map, prototype_mask, psi
from nipad.models.backbone import Backbone
from nipad.models.output import ModelModule, ModelOutput
from nipad.models.prompt_pool import PromptPool


def harmonic_mean(maps: Sequence[Tensor], eps: float = 1e-12) -> Tensor:
    """Eq. 19: |K| / sum_k 1 / S^(k), elementwise (values clamped to `eps`, so a zero gives ~0, not NaN)."""
    return len(maps) / cast(Tensor, sum(1.0 / m.clamp_min(eps) for m in maps))  # at least one scale


def blur(maps: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of (B, 1, H, W) maps, truncated at 4 sigma as scipy's gaussian_filter (none for sigma 0)."""
    if sigma <= 0:
        return maps
    radius = min(int(4 * sigma + 0.5), maps.shape[-1] - 1)
    return gaussian_blur(maps, kernel_size=[2 * radius + 1] * 2, sigma=[sigma, sigma])


def denoising_steps(steps: int, strength: float) -> int:
    """UNet evaluations of one inpainting: the last int(lambda * steps) of the `steps` schedule (as img2img)."""
    return min(int(steps * strength), steps)


def unet_evaluations(scales: Sequence[int], steps: int, strength: float, prototype: bool = True) -> int:
    """UNet evaluations per test image: one inpainting per grid cell of every scale, plus the prototype mask."""
    return (sum(k * k for k in scales) + int(prototype)) * denoising_steps(steps, strength)


class ImageScores(TypedDict):
    anomaly_map: Tensor  # (1, 1, S, S), blurred
    ms_map: Tensor  # S_ms
    pg_map: Tensor | None  # S_pg; None without a prototype mask


def score_image(inpaint: Callable[[Tensor], Tensor], distance: Callable[[Tensor], Tensor],
                scale_masks: Sequence[Tensor], proto_mask: Tensor | None, alpha: float, sigma: float,
                batch_size: int) -> ImageScores:
    """Eqs. 18-21 for one image. `inpaint(masks (n, 1, S, S)) -> (n, 3, S, S)` inpaintings of the image and
    `distance(inpaintings) -> (n, 1, S, S)` their D to the image; masks are inpainted `batch_size` at a time.
    Returns anomaly_map (1, 1, S, S, blurred), ms_map (S_ms) and pg_map (S_pg, None without a prototype mask)."""
    masks = torch.cat([*scale_masks, *([proto_mask] if proto_mask is not None else [])])
    scored = torch.cat([m * distance(inpaint(m)) for m in masks.split(batch_size)])
    per_scale = list(scored[:sum(len(m) for m in scale_masks)].split([len(m) for m in scale_masks]))
    ms_map = harmonic_mean([s.sum(dim=0, keepdim=True) for s in per_scale])
    pg_map = scored[-1:] if proto_mask is not None else None
    fused = ms_map if pg_map is None else (1 - alpha) * ms_map + alpha * pg_map
    return ImageScores(anomaly_map=blur(fused, sigma), ms_map=ms_map, pg_map=pg_map)


class Inpainter:
    """SD inpainting of one image under many masks, from z_{lambda T} = noised E(x) (eq. 11) with DDIM."""

    def __init__(self, parts: SDParts, steps: int) -> None:
        self.unet, self.vae = parts.unet, parts.vae
        self.scheduler = parts.ddim()
        self.steps = steps
        self.vae_scaling = float(parts.vae.config.scaling_factor)

    def encode(self, images: Tensor) -> Tensor:
        """Latents E(x) (distribution means) of images in [0, 1]."""
        return self.vae.encode(images * 2 - 1).latent_dist.mode() * self.vae_scaling

    @torch.no_grad()
    def __call__(self, image: Tensor, latent: Tensor, masks: Tensor, condition: Tensor, strength: float,
                 generator: torch.Generator | None = None) -> Tensor:
        """(1, 3, S, S) image in [0, 1], its latent (1, c, h, w), masks (n, 1, S, S), condition (L, D)
        -> (n, 3, S, S) inpaintings in [0, 1]."""
        n = len(masks)
        masked = self.encode(image * (1 - masks) + 0.5 * masks).float()  # masked pixels grey: 0 in [-1, 1]
        small = nn.functional.interpolate(masks, size=latent.shape[-2:], mode="nearest")
        self.scheduler.set_timesteps(self.steps, device=latent.device)
        timesteps = self.scheduler.timesteps[self.steps - denoising_steps(self.steps, strength):]
        noise = torch.randn((n, *latent.shape[1:]), generator=generator, device=latent.device, dtype=latent.dtype)
        z = self.scheduler.add_noise(latent.expand(n, -1, -1, -1), noise, timesteps[:1].repeat(n))
        states = condition[None].expand(n, -1, -1).to(latent.dtype)
        for t in timesteps:
            z_in = torch.cat([self.scheduler.scale_model_input(z, t), masked, small], dim=1)
            z = self.scheduler.step(self.unet(z_in, t, encoder_hidden_states=states).sample, t, z).prev_sample
        return ((self.vae.decode(z / self.vae_scaling).sample.float() + 1) / 2).clamp(0, 1)


class AnomalySD(ModelModule):
    """The whole detector: `model(images uint8 (B, 3, S, S)) -> ModelOutput` (nipad.models.output) as every nipad
    model, with the multi-scale map as `rec_map` and the prototype map (None without shots) as `ref_map`.

    `conditions` maps each class to its averaged prompt states (L, D); `shots` each class to its normal shots
    (k, 3, S, S uint8), which make the prototype banks and the class pool; `perceptual` measures D (eq. 17).
    Without shots (k = 0) there is no prototype map and, with several classes, no way to tell the class: the
    condition is then the mean over classes.
    """

    takes_class: ClassVar[bool] = False  # the class comes from the pool (a caller may still pass `classes`)
    model_name: ClassVar[str] = MODEL
    # no prompt pool (ModelModule's None): its pool of shots (`prompts`) is fixed by fine-tuning, `nipad prompt add`
    # cannot extend it
    conditions: Tensor  # a buffer (register_buffer in __init__)

    def __init__(self, config: AnomalySDConfig, parts: SDParts, backbone: Backbone, perceptual: Perceptual,
                 conditions: Mapping[str, Tensor], shots: Mapping[str, Tensor]) -> None:
        super().__init__()
        self.config = config
        self.net, self.vae, self.backbone, self.perceptual = parts.unet, parts.vae, backbone, perceptual
        self.inpainter = Inpainter(parts, config.steps)
        self.class_names = list(conditions)
        self.register_buffer("conditions", torch.stack([conditions[c] for c in self.class_names]), persistent=False)
        self.prompts = PromptPool()
        self.bank_index: dict[str, int] = {}
        for name, images in shots.items():
            x = images.float().to(self.conditions.device) / 255
            self.prompts.add(name, psi(backbone, x))
            self.bank_index[name] = len(self.bank_index)
            self.register_buffer(f"bank_{self.bank_index[name]}", build_bank(backbone, x, config.rotations),
                                 persistent=False)

    def classify(self, features: Tensor) -> list[str | None]:
        if len(self.prompts):
            return list(self.prompts.class_of(self.prompts.select(features)))
        return [self.class_names[0] if len(self.class_names) == 1 else None] * len(features)

    def condition(self, class_name: str | None) -> Tensor:
        if class_name in self.class_names:
            return self.conditions[self.class_names.index(class_name)]
        return self.conditions.mean(dim=0)

    def score_one(self, image: Tensor, features: Tensor, name: str | None, scale_masks: Sequence[Tensor]
                  ) -> ImageScores:
        """score_image for one (1, 3, S, S) image in [0, 1] with its psi features (C, h, w) and class."""
        cfg, size = self.config, image.shape[-1]
        proto = None
        if name in self.bank_index:
            proto = prototype_mask(error_map(features, getattr(self, f"bank_{self.bank_index[name]}")), size)
        reference = self.perceptual.stages(image)
        generator = torch.Generator(image.device).manual_seed(cfg.seed)
        amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=image.device.type == "cuda")
        with amp:
            latent = self.inpainter.encode(image).float()
        condition, strength = self.condition(name), cfg.strength_of(name)

        def inpaint(masks: Tensor) -> Tensor:
            with amp:
                return self.inpainter(image, latent, masks, condition, strength, generator)

        def distance(inpainted: Tensor) -> Tensor:
            return distance_map(self.perceptual, reference, self.perceptual.stages(inpainted.float()), size)

        return score_image(inpaint, distance, scale_masks, proto, cfg.alpha, cfg.blur_sigma, cfg.mask_batch)

    @torch.no_grad()
    def forward(self, images: Tensor, classes: Sequence[str] | None = None) -> ModelOutput:
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        features = psi(self.backbone, x)
        names = list(classes) if classes is not None else self.classify(features)
        scale_masks = multiscale_masks(x.shape[-1], self.config.scales, x.device)
        outputs = [self.score_one(x[b:b + 1], features[b], name, scale_masks) for b, name in enumerate(names)]
        anomaly_map = torch.cat([o["anomaly_map"] for o in outputs])
        pg = [p for o in outputs if (p := o["pg_map"]) is not None]
        return ModelOutput(
            pred_score=anomaly_map.flatten(1).max(dim=1).values,
            anomaly_map=anomaly_map,
            prompt_class=None if any(n is None for n in names) else names,
            rec_map=torch.cat([o["ms_map"] for o in outputs]),
            ref_map=torch.cat(pg) if len(pg) == len(outputs) else None,
        )
