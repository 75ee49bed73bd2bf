"""RotatE all-entity kernels (mmkgc_pyg.kernels.rotate) against float64 references.

The Triton kernels run on ``--kernel-device`` (tests/conftest.py): compiled on a GPU, in
Triton's interpreter on the CPU, so sizes are small and deliberately not multiples of the
tile shapes.

Ranks on the GPU: ``tl.sqrt`` compiles to the approximate square root (relative error about
2**-22), so a distance within a few ulps of the target's may land on either side of it.
:func:`assert_ranks_match` therefore accepts, on CUDA only, any rank between "every near-tie
counts as worse" and "every near-tie counts as better", where a near-tie is an entity whose
float64 distance is within ``NEAR_TIE * (4 + k) * d_target`` of the target's. Exact ties
(identical entity rows) are computed with identical arithmetic and stay exact on every
device; the tests of exact ties compare exactly.
"""
import pytest
import torch

from mmkgc_pyg.errors import UserInputError
from mmkgc_pyg.kernels.rotate import (rank_from_scores, rotate_filtered_ranks,
                                      rotate_filtered_ranks_reference, rotate_scores,
                                      rotate_scores_reference, rotate_topk)

SIZES = [(1, 1, 1), (5, 13, 3), (13, 37, 5), (37, 70, 13), (70, 5, 2)]  # (B, N, k)


NEAR_TIE = 2.0**-21  # per unit of (4 + k) and of the target distance; see the docstring


def _embeddings(B, N, k, seed, dtype=torch.float32, duplicates=0):
    """Queries [B, 2k] and entities [N, 2k]; the last ``duplicates`` entity rows repeat the
    first ones exactly (ties)."""
    gen = torch.Generator().manual_seed(seed)
    query = torch.randn(B, 2 * k, generator=gen).to(dtype)
    entities = torch.randn(N, 2 * k, generator=gen).to(dtype)
    if duplicates:
        entities[N - duplicates:] = entities[:duplicates]
    return query, entities


def _filters(B, N, target, seed, max_len=4, include_target=False):
    """Random CSR filter lists, unique per query; some empty, some holding the target."""
    gen = torch.Generator().manual_seed(seed)
    lists = []
    for b in range(B):
        entities = torch.randperm(N, generator=gen)[:int(torch.randint(0, max_len + 1, (1, ),
                                                                           generator=gen))]
        if include_target and b % 2 and target[b] not in entities:
            entities = torch.cat([entities, target[b:b + 1]])
        lists.append(entities)
    ptr = torch.tensor([0] + [len(x) for x in lists]).cumsum(0)
    idx = torch.cat(lists) if lists else torch.zeros(0, dtype=torch.long)
    return ptr, idx.long()


def _brute_force_ranks(scores, target, ptr, idx):
    """Per-query Python loop: 1 + #better + #tied/2 over the unfiltered other entities."""
    ranks = []
    for b in range(scores.size(0)):
        ignored = set(idx[ptr[b]:ptr[b + 1]].tolist()) | {int(target[b])}
        rank = 1.0
        for n in range(scores.size(1)):
            if n not in ignored:
                rank += float(scores[b, n] > scores[b, target[b]])
                rank += 0.5 * float(scores[b, n] == scores[b, target[b]])
        ranks.append(rank)
    return torch.tensor(ranks)


def on(device, *tensors):
    return [t.to(device) for t in tensors]


def assert_ranks_match(ranks, query, entities, target, ptr, idx):
    """Kernel ranks (any device) against float64 ranks: exact on the CPU, within the
    documented near-ties of the approximate square root on a GPU."""
    device = ranks.device
    ranks = ranks.cpu()
    query, entities = query.double(), entities.double()
    expected = rotate_filtered_ranks_reference(query, entities, target, ptr, idx)
    if device.type == "cpu":
        torch.testing.assert_close(ranks, expected, rtol=0, atol=0)
        return
    distance = -rotate_scores_reference(query, entities, 0.0)  # [B, N] float64
    rows = torch.arange(len(target))
    target_distance = distance[rows, target][:, None]
    tolerance = NEAR_TIE * (4 + query.size(1) // 2) * target_distance
    competing = torch.ones_like(distance, dtype=torch.bool)
    competing[torch.arange(len(target)).repeat_interleave(ptr.diff()), idx] = False
    competing[rows, target] = False
    lowest = 1 + ((distance < target_distance - tolerance) & competing).sum(1)
    highest = 1 + ((distance <= target_distance + tolerance) & competing).sum(1)
    assert ((lowest <= ranks) & (ranks <= highest)).all(), (ranks, expected)


@pytest.mark.parametrize("seed", range(4))
def test_rank_from_scores_matches_brute_force_with_ties(seed):
    gen = torch.Generator().manual_seed(seed)
    B, N = 9, 11
    scores = torch.randint(0, 4, (B, N), generator=gen).double()  # many exact ties
    target = torch.randint(0, N, (B, ), generator=gen)
    ptr, idx = _filters(B, N, target, seed, max_len=5, include_target=True)
    ranks = rank_from_scores(scores, target, ptr, idx)
    assert ranks.dtype == torch.float32
    torch.testing.assert_close(ranks, _brute_force_ranks(scores, target, ptr, idx),
                               rtol=0, atol=0)


@pytest.mark.parametrize("B,N,k", SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rotate_scores_matches_float64(kernel_device, B, N, k, dtype):
    query, entities = _embeddings(B, N, k, seed=B * N + k, dtype=dtype)
    scores = rotate_scores(*on(kernel_device, query, entities), 12.0).cpu()
    expected = rotate_scores_reference(query.double(), entities.double(), 12.0)
    assert scores.dtype == torch.float32 and scores.shape == (B, N)
    torch.testing.assert_close(scores.double(), expected, rtol=1e-5, atol=1e-4)


def test_rotate_scores_empty(kernel_device):
    query, entities = _embeddings(0, 7, 3, seed=0)
    assert rotate_scores(*on(kernel_device, query, entities), 12.0).shape == (0, 7)


@pytest.mark.parametrize("B,N,k", SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_filtered_ranks_match_float64(kernel_device, B, N, k, dtype):
    seed = 3 * B + N + k
    query, entities = _embeddings(B, N, k, seed, dtype)
    target = torch.randint(0, N, (B, ), generator=torch.Generator().manual_seed(seed))
    ptr, idx = _filters(B, N, target, seed, include_target=True)
    ranks = rotate_filtered_ranks(*on(kernel_device, query, entities, target, ptr, idx))
    assert ranks.dtype == torch.float32 and ranks.shape == (B, )
    assert_ranks_match(ranks, query, entities, target, ptr, idx)


def test_filtered_ranks_exact_ties_count_half(kernel_device):
    """Duplicated entity rows (the target's among them) tie exactly with the target."""
    B, N, k = 13, 37, 5
    query, entities = _embeddings(B, N, k, seed=7, duplicates=6)
    target = torch.arange(B) % 6  # every target has a duplicate at N - 6 + target
    ptr, idx = _filters(B, N, target, seed=7, max_len=3, include_target=True)
    ranks = rotate_filtered_ranks(*on(kernel_device, query, entities, target, ptr, idx)).cpu()
    scores = rotate_scores_reference(query.double(), entities.double(), 0.0)
    expected = _brute_force_ranks(scores, target, ptr, idx)
    torch.testing.assert_close(ranks, expected, rtol=0, atol=0)
    unfiltered_twin = [b for b in range(B) if N - 6 + int(target[b]) not in
                       idx[ptr[b]:ptr[b + 1]].tolist()]
    assert unfiltered_twin and all(ranks[b] % 1 == 0.5 for b in unfiltered_twin)


def test_filtered_ranks_filter_everything_but_target(kernel_device):
    B, N, k = 5, 13, 3
    query, entities = _embeddings(B, N, k, seed=11)
    target = torch.tensor([0, 4, 12, 7, 4])
    lists = [torch.tensor([n for n in range(N) if n != int(t) or b % 2]) for b, t in
             enumerate(target)]
    ptr = torch.tensor([0] + [len(x) for x in lists]).cumsum(0)
    ranks = rotate_filtered_ranks(*on(kernel_device, query, entities, target, ptr,
                                      torch.cat(lists)))
    torch.testing.assert_close(ranks.cpu(), torch.ones(B), rtol=0, atol=0)


def test_filtered_ranks_empty_batch(kernel_device):
    query, entities = _embeddings(0, 5, 2, seed=0)
    ranks = rotate_filtered_ranks(*on(kernel_device, query, entities,
                                      torch.zeros(0, dtype=torch.long),
                                      torch.zeros(1, dtype=torch.long),
                                      torch.zeros(0, dtype=torch.long)))
    assert ranks.shape == (0, )


@pytest.mark.parametrize("filtered", [False, True])
def test_topk_matches_sort(kernel_device, filtered):
    B, N, k = 13, 37, 5
    query, entities = _embeddings(B, N, k, seed=5)
    scores = rotate_scores_reference(query.double(), entities.double(), 12.0)
    filters = ()
    if filtered:
        filters = _filters(B, N, torch.zeros(B, dtype=torch.long), seed=5, max_len=6)
        scores = scores.masked_fill(_dense_mask(*filters, N), float("-inf"))
    top_scores, top_idx = rotate_topk(*on(kernel_device, query, entities), 12.0, 7,
                                      *on(kernel_device, *filters))
    top_scores, top_idx = top_scores.cpu().double(), top_idx.cpu()
    expected_scores, expected_idx = scores.sort(dim=1, descending=True)
    # The best 7 scores, and the returned entities really have them (an order that differs
    # only between near-ties is as good as the float64 one).
    torch.testing.assert_close(top_scores, expected_scores[:, :7], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(scores.gather(1, top_idx), top_scores, rtol=1e-5, atol=1e-4)
    assert all(len(set(row)) == 7 for row in top_idx.tolist())
    if kernel_device.type == "cpu":
        torch.testing.assert_close(top_idx, expected_idx[:, :7], rtol=0, atol=0)


def _dense_mask(ptr, idx, N):
    mask = torch.zeros(ptr.numel() - 1, N, dtype=torch.bool)
    for b in range(ptr.numel() - 1):
        mask[b, idx[ptr[b]:ptr[b + 1]]] = True
    return mask


def test_topk_clamps_k_to_entities(kernel_device):
    query, entities = _embeddings(4, 5, 3, seed=2)
    top_scores, top_idx = rotate_topk(*on(kernel_device, query, entities), 12.0, 50)
    assert top_idx.shape == (4, 5)
    assert (top_idx.cpu().sort(dim=1).values == torch.arange(5)).all()


def test_torch_mode_runs_the_reference(monkeypatch):
    monkeypatch.setenv("MMKGC_KERNELS", "torch")
    query, entities = _embeddings(5, 13, 3, seed=1, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 3, 12])
    ptr, idx = _filters(5, 13, target, seed=1)
    # float64 output only comes from the reference path
    assert rotate_scores(query, entities, 12.0).dtype == torch.float64
    torch.testing.assert_close(rotate_scores(query, entities, 12.0),
                               rotate_scores_reference(query, entities, 12.0), rtol=0, atol=0)
    torch.testing.assert_close(rotate_filtered_ranks(query, entities, target, ptr, idx),
                               rotate_filtered_ranks_reference(query, entities, target, ptr,
                                                               idx), rtol=0, atol=0)


def test_bad_shapes_raise_user_error():
    query, entities = _embeddings(3, 4, 2, seed=0)
    with pytest.raises(UserInputError, match="2k"):
        rotate_scores(query[:, :3], entities[:, :3], 12.0)
    with pytest.raises(UserInputError, match="filter_ptr"):
        rotate_filtered_ranks(query, entities, torch.zeros(3, dtype=torch.long),
                              torch.zeros(3, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    with pytest.raises(UserInputError, match="k >= 1"):
        rotate_topk(query, entities, 12.0, 0)
