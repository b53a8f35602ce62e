"""Memory-bank helpers for PatchCore: random projection, greedy coreset selection, chunked nearest neighbours.

Written by hand because no installed library does the greedy k-center selection in bounded memory (anomalib's
`KCenterGreedy` is the same loop but pulls in all of anomalib), and faiss is not available here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

DEFAULT_CHUNK = 65536


def random_projection(in_dim: int, out_dim: int, seed: int) -> Tensor:
    """(in_dim, out_dim) Gaussian projection matrix scaled by 1/sqrt(out_dim) (Johnson-Lindenstrauss), seeded."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(in_dim, out_dim, generator=g) / math.sqrt(out_dim)


def project(features: Tensor | Sequence[Tensor], projection: Tensor | None) -> Tensor:
    """float32 (N, out_dim) projection of (N, D) features of any dtype, given whole or as row chunks (projected one
    chunk at a time, so the chunks never need concatenating)."""
    chunks = [features] if isinstance(features, Tensor) else list(features)
    out_dim = chunks[0].shape[1] if projection is None else projection.shape[1]
    out = torch.empty(sum(len(c) for c in chunks), out_dim, dtype=torch.float32, device=chunks[0].device)
    start = 0
    for chunk in chunks:
        for rows in chunk.split(DEFAULT_CHUNK):
            rows = rows.float()
            out[start:start + len(rows)] = rows if projection is None else rows @ projection.to(rows.device)
            start += len(rows)
    return out


def gather_rows(chunks: Sequence[Tensor], index: Tensor) -> Tensor:
    """Rows `index` of the concatenation of `chunks`, without concatenating them."""
    offsets = torch.tensor([0] + [len(c) for c in chunks]).cumsum(0)
    which = torch.searchsorted(offsets, index, right=True) - 1
    out = chunks[0].new_empty(len(index), chunks[0].shape[1])
    for c in which.unique().tolist():
        mask = which == c
        out[mask.to(out.device)] = chunks[c][(index[mask] - offsets[c]).to(chunks[c].device)]
    return out


def greedy_coreset(features: Tensor | Sequence[Tensor], n: int, projection_dim: int | None = 128, seed: int = 0,
                   progress: Callable[[int], None] | None = None) -> Tensor:
    """Indices of `n` rows of the (N, D) `features` (whole or as row chunks) picked by PatchCore's greedy k-center
    selection.

    The first pick is a seeded random row; each next pick is the row farthest from everything picked so far. Only
    the (N,) vector of each row's squared distance to its nearest pick is kept and updated after every pick, with
    one matrix-vector product (|x|^2 - 2 x.c + |c|^2): no pairwise matrix, O(N) extra memory besides the float32
    projection (to `projection_dim` dimensions when that is smaller than D, as the paper's approximate variant).
    """
    dim = features.shape[1] if isinstance(features, Tensor) else features[0].shape[1]
    projection = (random_projection(dim, projection_dim, seed)
                  if projection_dim is not None and projection_dim < dim else None)
    points = project(features, projection)
    total = len(points)
    if not 0 < n <= total:
        raise ValueError(f"cannot pick {n} coreset rows out of {total}")
    squares = torch.linalg.vector_norm(points, dim=1).square_()
    nearest = torch.full((total,), math.inf, device=points.device)
    distance = torch.empty_like(nearest)
    picks = torch.empty(n, dtype=torch.long)
    pick = int(torch.randint(total, (1,), generator=torch.Generator().manual_seed(seed)))
    for i in range(n):
        picks[i] = pick
        torch.addmv(squares, points, points[pick], alpha=-2.0, out=distance)
        distance += squares[pick]
        torch.minimum(nearest, distance, out=nearest)
        nearest[pick] = 0.0
        pick = int(nearest.argmax())
        if progress is not None:
            progress(1)
    return picks


def nearest_neighbours(queries: Tensor, bank: Tensor, k: int = 1, query_chunk: int = 4096,
                       bank_chunk: int = DEFAULT_CHUNK) -> tuple[Tensor, Tensor]:
    """Euclidean distances (Q, k) and bank indices (Q, k) of each query's k nearest bank rows, ascending.

    torch.cdist over (query chunk x bank chunk) blocks, merging the running top-k, so memory stays at one block.
    cdist's matrix-product form (|q|^2 - 2 q.b + |b|^2) loses digits to cancellation for near rows (1e-3 on the
    maps of a 224 px kNN run), so the distances to the k found are then computed directly.
    """
    k = min(k, len(bank))
    all_dist, all_index = [], []
    for q0 in range(0, len(queries), query_chunk):
        q = queries[q0:q0 + query_chunk].float()
        best_d = torch.empty(len(q), 0, device=q.device)
        best_i = torch.empty(len(q), 0, dtype=torch.long, device=q.device)
        for b0 in range(0, len(bank), bank_chunk):
            d = torch.cdist(q, bank[b0:b0 + bank_chunk].to(q))
            d, i = d.topk(min(k, d.shape[1]), dim=1, largest=False)
            best_d, order = torch.cat([best_d, d], 1).topk(min(k, best_d.shape[1] + d.shape[1]), dim=1, largest=False)
            best_i = torch.cat([best_i, i + b0], 1).gather(1, order)
        best_d = torch.linalg.vector_norm(q[:, None, :] - bank[best_i].to(q), dim=-1)
        best_d, order = best_d.sort(dim=1, stable=True)
        all_dist.append(best_d)
        all_index.append(best_i.gather(1, order))
    return torch.cat(all_dist), torch.cat(all_index)
