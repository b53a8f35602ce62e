"""PatchCore, PaDiM and kNN runs as one traceable graph for export: uint8 RGB images of any size -> score, anomaly
map, class index, the outputs of the OneNIP graph (nipad.export.graph), so the exporter's check, the sidecar and the
runner are shared.

What differs from `PatchBaseline.forward`, all so the graph has static control flow:
* the resize to the model size is inside (`resize_images`, as the OneNIP graph: an identity at the model size);
* the class is the argmax of the cosine similarities to the class-mean descriptors, returned as its index in
  `class_names`; a class -> group table picks the fitted state (separate mode), or there is one group (unified);
* nearest neighbours: one squared-distance matrix to every group's bank rows at once (|q|^2 - 2 q.b + |b|^2, other
  groups' rows masked), no chunked loops; the distance to the nearest row is then taken directly, so it is exact;
* PaDiM gathers each image's group's Gaussians;
* `smooth_map`'s Gaussian kernel is a constant (torchvision's blur builds it from the input's channel count, which
  the exporter cannot give the convolution).
Memory: the banks (float32 in the file) and PaDiM's inverse covariances (positions x dims^2 per group) are constants
of the graph, and one image's distance matrix holds its patches x all bank rows. At 224 px, unified runs on 5 products
exported to 16 MB (PatchCore), 130 MB (PaDiM, 125 MB per group) and 167 MB (kNN: 267k bank rows, so 210 MB of
distances per image).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nipad.errors import ConfigError
from nipad.export.graph import resize_images
from nipad.models.baselines.knn import Knn
from nipad.models.baselines.padim import Padim, mahalanobis
from nipad.models.baselines.patchcore import PatchCore
from nipad.models.baselines.template import PatchBaseline
from nipad.models.prompt_pool import descriptor


class Smoothing(nn.Module):
    """nipad.models.baselines.template.smooth_map: bilinear upsampling to size x size, then torchvision's Gaussian blur
    (its kernel, built by the same ops, reflect padding, one convolution)."""

    kernel: Tensor  # a buffer (register_buffer in __init__)

    def __init__(self, size: int, sigma: float) -> None:
        super().__init__()
        self.size = size
        self.radius = min(int(4 * sigma + 0.5), size - 1) if sigma > 0 else 0
        x = torch.linspace(-float(self.radius), float(self.radius), steps=2 * self.radius + 1)
        pdf = torch.exp(-0.5 * (x / sigma).pow(2)) if sigma > 0 else torch.ones(1)
        line = pdf / pdf.sum()
        self.register_buffer("kernel", torch.mm(line[:, None], line[None, :])[None, None])

    def forward(self, patch_scores: Tensor) -> Tensor:
        maps = F.interpolate(patch_scores, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if self.radius == 0:
            return maps
        return F.conv2d(F.pad(maps, [self.radius] * 4, mode="reflect"), self.kernel)


class BaselineGraph(nn.Module):
    """Wraps a fitted `PatchBaseline`; forward(images uint8 B x 3 x H x W, NCHW RGB) ->
    (pred_score (B,), anomaly_map (B, 1, S, S), class index (B,) int64 into `class_names`). Subclasses define
    `score(embeddings, group)` -> (patch scores (B, 1, h, w), image scores (B,) or None for the map's maximum)."""

    class_means: Tensor  # buffers (register_buffer in __init__)
    class_group: Tensor

    def __init__(self, model: PatchBaseline) -> None:
        super().__init__()
        self.model = model.eval()
        self.model_name, self.image_size = model.config.model, model.config.image_size
        self.class_names = list(model.class_names)
        self.n_groups = len(model.groups)
        self.smooth = Smoothing(self.image_size, model.config.blur_sigma)
        groups = [0] * len(self.class_names) if model.config.mode == "unified" else [
            model.groups.index(name) for name in self.class_names]
        self.register_buffer("class_means", model.class_means.float())
        self.register_buffer("class_group", torch.tensor(groups, dtype=torch.long))

    def states(self, key: str) -> list[Tensor]:
        return [self.model.group_state(i, key) for i in range(self.n_groups)]

    def score(self, embeddings: Tensor, group: Tensor) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        embeddings = self.model.embed(resize_images(images, self.image_size) / 255.0)
        index = (descriptor(embeddings) @ self.class_means.T).argmax(dim=1)
        patch, scores = self.score(embeddings, self.class_group[index])
        anomaly_map = self.smooth(patch)
        if scores is None:
            scores = anomaly_map.flatten(1).amax(dim=1)
        return scores, anomaly_map, index


class BankGraph(BaselineGraph):
    """kNN: every group's bank in one (N, C) matrix with the group of each row; patch score = nearest distance."""

    bank_t: Tensor  # buffers (register_buffer in __init__)
    bank_norms: Tensor
    owners: Tensor
    rows: Tensor

    def __init__(self, model: PatchBaseline) -> None:
        super().__init__(model)
        banks = self.states("bank")
        bank = torch.cat(banks).float()
        self.register_buffer("bank_t", bank.T.contiguous())  # (C, N): the only copy (bank.T would be a second)
        self.register_buffer("bank_norms", bank.square().sum(dim=1))
        self.register_buffer("owners", torch.cat([torch.full((len(b),), i) for i, b in enumerate(banks)]))
        self.register_buffer("rows", torch.arange(len(bank)))
        self.smallest_bank = min(len(b) for b in banks)

    def squared_distances(self, queries: Tensor, group: Tensor) -> Tensor:
        """(B, Q, N) squared distances of queries (B, Q, C) to the bank rows, +inf outside each image's group."""
        d2 = queries.square().sum(dim=-1, keepdim=True) - 2.0 * queries @ self.bank_t + self.bank_norms
        if self.n_groups > 1:
            d2 = d2.masked_fill(self.owners[None, None, :] != group[:, None, None], float("inf"))
        return d2

    def bank_rows(self, index: Tensor) -> Tensor:
        """Bank rows at `index` (any shape) -> (*index.shape, C)."""
        return self.bank_t[:, index].movedim(0, -1)

    def nearest(self, queries: Tensor, group: Tensor) -> tuple[Tensor, Tensor]:
        """Distance (B, Q) to and bank index (B, Q) of each query's nearest row of its group."""
        index = self.squared_distances(queries, group).argmin(dim=2)
        return torch.linalg.vector_norm(queries - self.bank_rows(index), dim=-1), index

    @staticmethod
    def queries(embeddings: Tensor) -> Tensor:
        b, c, h, w = embeddings.shape
        return embeddings.permute(0, 2, 3, 1).reshape(b, h * w, c)

    def score(self, embeddings: Tensor, group: Tensor) -> tuple[Tensor, Tensor | None]:
        dist, _ = self.nearest(self.queries(embeddings), group)
        return dist.reshape(embeddings.shape[0], 1, *embeddings.shape[-2:]), None


class PatchCoreGraph(BankGraph):
    """kNN's map plus the paper's reweighted image score (nipad.models.baselines.patchcore.reweighted_score)."""

    model: PatchCore  # GRAPHS pairs this graph with PatchCore

    def score(self, embeddings: Tensor, group: Tensor) -> tuple[Tensor, Tensor | None]:
        queries = self.queries(embeddings)
        dist, index = self.nearest(queries, group)
        patch = dist.reshape(embeddings.shape[0], 1, *embeddings.shape[-2:])
        k = min(self.model.config.num_neighbours, self.smallest_bank)
        if k < 2:
            return patch, dist.amax(dim=1)
        top = dist.argmax(dim=1, keepdim=True)  # (B, 1): m_test,*
        s_star = dist.gather(1, top)[:, 0]
        m_test = queries.gather(1, top[:, :, None].expand(-1, -1, queries.shape[-1]))  # (B, 1, C)
        star = index.gather(1, top)  # (B, 1): m*, first in its own neighbourhood (distance 0, as the model sorts)
        d2 = self.squared_distances(self.bank_rows(star), group)[:, 0]
        d2 = d2.masked_fill(self.rows[None, :] == star, -1.0)
        support = d2.topk(k, dim=1, largest=False).indices  # (B, k)
        d = torch.linalg.vector_norm(m_test - self.bank_rows(support), dim=-1)
        return patch, (1.0 - torch.softmax(d, dim=1)[:, 0]) * s_star


class PadimGraph(BaselineGraph):
    """Mahalanobis distance per position to the image's group's Gaussians."""

    mean: Tensor  # buffers (register_buffer in __init__)
    inv_covariance: Tensor

    def __init__(self, model: PatchBaseline) -> None:
        super().__init__(model)
        self.register_buffer("mean", torch.stack(self.states("mean")))  # (G, P, d)
        self.register_buffer("inv_covariance", torch.stack(self.states("inv_covariance")))  # (G, P, d, d)

    def score(self, embeddings: Tensor, group: Tensor) -> tuple[Tensor, Tensor | None]:
        b, _, h, w = embeddings.shape
        x = embeddings.flatten(2).transpose(1, 2)  # (B, P, d)
        if self.n_groups == 1:
            dist = mahalanobis(x, self.mean[0], self.inv_covariance[0])
        else:
            diff = x.float() - self.mean[group]
            dist = torch.einsum("bpd,bpde,bpe->bp", diff, self.inv_covariance[group], diff).clamp_min(0).sqrt()
        return dist.reshape(b, 1, h, w), None


GRAPHS: tuple[tuple[type[PatchBaseline], type[BaselineGraph]], ...] = (
    (PatchCore, PatchCoreGraph), (Padim, PadimGraph), (Knn, BankGraph))


MAX_BYTES = 2**31 - 2**27  # an .onnx file is one protobuf (2 GiB at most); room for the graph itself


def baseline_graph(model: PatchBaseline) -> BaselineGraph:
    """The graph of a fitted PatchCore, PaDiM or kNN model; ConfigError when its constants exceed one ONNX file."""
    kind = next((g for family, g in GRAPHS if isinstance(model, family)), None)
    if kind is None:
        raise ConfigError(f"ONNX export has no graph for {type(model).__name__} runs")
    graph = kind(model).eval()
    constants = [*graph.buffers(recurse=False), *graph.smooth.buffers(), *model.backbone.parameters(),
                 *model.backbone.buffers()]
    size = sum(t.numel() * 4 for t in constants)  # float32 in the file
    if size > MAX_BYTES:
        raise ConfigError(f"this {graph.model_name} run's fitted state ({size / 2**30:.1f} GiB as float32, "
                          f"{graph.n_groups} groups) exceeds the 2 GiB of one ONNX file. Fix: train it with "
                          f"--mode unified" + (" or fewer --padim-dims" if isinstance(model, Padim) else ""))
    return graph
