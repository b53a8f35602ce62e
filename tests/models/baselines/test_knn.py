"""kNN baseline: its map is the distance to the nearest training patch on the stride-16 token grid."""

import torch

from nipad.models.baselines.knn import Knn, KnnConfig


def _fitted(images: torch.Tensor) -> Knn:
    model = Knn(KnnConfig(image_size=64)).eval()
    model.fit({"__all__": [(images, ["a"] * len(images))]})
    return model


def test_a_training_image_scores_zero_and_a_changed_one_scores_where_it_changed():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    model = _fitted(images)
    same = model(images[:1])
    assert same["pred_score"].item() < 0.2  # float16 bank: rounding only
    changed = images[:1].clone()
    changed[..., 40:56, 40:56] = 255
    out = model(changed)
    assert out["pred_score"].item() > 10 * same["pred_score"].item()
    anomaly_map = out["anomaly_map"][0, 0]
    assert anomaly_map[48, 48] > anomaly_map[8, 8]


def test_embedding_is_the_stride16_grid_of_pooled_stride8_and_stride16_maps():
    model = Knn(KnnConfig(image_size=64))
    emb = model.embed(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    assert emb.shape == (1, 40 + 112, 4, 4)
