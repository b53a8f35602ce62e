"""Every family's model answers the AnomalyModel protocol (nipad.models.output): its `--model` name, device, whether
it takes the class, its prompt pool, and a call on uint8 images giving a ModelOutput at the model's size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nipad.models.anomalysd.build import build_model
from nipad.models.anomalysd.config import AnomalySDConfig
from nipad.models.anomalysd.perceptual import BackboneStages
from nipad.models.anomalysd.pipeline import load_sd
from nipad.models.backbone import create_backbone
from nipad.models.baselines.knn import Knn, KnnConfig
from nipad.models.baselines.padim import Padim, PadimConfig
from nipad.models.baselines.patchcore import PatchCore, PatchCoreConfig
from nipad.models.names import MODELS
from nipad.models.onenip.detector import Detector
from nipad.models.onenip.model_config import ModelConfig
from nipad.models.output import AnomalyModel, module_device
from nipad.models.prompt_pool import PromptPool
from nipad.runs.file_names import ALL

SIZE = 64
TINY = dict(image_size=SIZE, hidden_dim=32, heads=4, encoder_layers=1, decoder_layers=1, ffn_dim=64,
            refiner_channels=16)
IMAGES = torch.randint(0, 256, (2, 3, SIZE, SIZE), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def _detector(name: str) -> Detector:
    detector = Detector(ModelConfig(model=name, **TINY)).eval()
    detector.prompts.add("dots", detector.features(IMAGES[:1]))
    return detector


def _baseline(name: str) -> nn.Module:
    model = {"patchcore": lambda: PatchCore(PatchCoreConfig(image_size=SIZE, min_coreset=8)),
             "padim": lambda: Padim(PadimConfig(image_size=SIZE, dims=8)),
             "knn": lambda: Knn(KnnConfig(image_size=SIZE))}[name]().eval()
    model.fit({ALL: [(IMAGES, ["dots"] * len(IMAGES))]})
    return model


def _anomalysd(tiny_sd) -> nn.Module:
    config = AnomalySDConfig(sd_model=str(tiny_sd), shots=1, image_size=SIZE, steps=3, scales=(1,), perceptual="lite0")
    stages = BackboneStages(create_backbone("lite0"))
    return build_model(config, load_sd(tiny_sd), {"dots": ["a photo of dots"]}, IMAGES[:1],
                       torch.zeros(1, dtype=torch.long), ["dots"], "cpu", perceptual=stages)


@pytest.fixture(params=MODELS)
def family(request, tiny_sd, one_thread) -> tuple[str, AnomalyModel]:
    name = request.param
    torch.manual_seed(0)
    if name in ("onenip", "uniad"):
        return name, _detector(name)
    return name, _anomalysd(tiny_sd) if name == "anomalysd" else _baseline(name)


def test_every_family_answers_the_protocol_without_probing(family):
    name, model = family
    assert model.model_name == name
    assert model.device == torch.device("cpu")
    assert model.takes_class is (name in ("patchcore", "padim", "knn"))
    pool = model.prompt_pool
    if name in ("onenip", "uniad"):
        assert isinstance(pool, PromptPool) and pool.class_names == ["dots"]
    else:
        assert pool is None
    given = {"classes": ["dots"] * len(IMAGES)} if model.takes_class else {}
    out = model(IMAGES, **given)
    assert out["pred_score"].shape == (len(IMAGES),)
    assert out["anomaly_map"].shape == (len(IMAGES), 1, model.config.image_size, model.config.image_size)
    assert list(out["prompt_class"]) == ["dots", "dots"]


def test_the_device_is_where_the_first_parameter_or_buffer_is():
    assert module_device(nn.Module()) == torch.device("cpu")
    holder = nn.Module()
    holder.register_buffer("x", torch.empty(1, device="meta"))
    assert module_device(holder) == torch.device("meta")
    assert module_device(nn.Linear(2, 2).to("meta")).type == "meta"
