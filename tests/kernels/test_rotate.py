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
import json

import pytest
import torch

from mmkgc_pyg.evaluation import Ranks
from mmkgc_pyg.kernels import rotate
from mmkgc_pyg.kernels.rotate import (ROTATE_TILE_CONFIGS, ROTATE_TUNE_ENTITIES,
                                      ROTATE_TUNE_PAIRS, fastest_tile, load_tiles,
                                      rotate_entity_columns, rotate_rank_counts, rotate_scores,
                                      rotate_scores_reference, tile_buckets, tile_cache_path,
                                      tile_key)

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


def kernel_ranks(device, query, entities, target, ptr, idx) -> torch.Tensor:
    """Realistic ranks from the kernel's counts, on the CPU."""
    better, tied = rotate_rank_counts(*on(device, query, entities, target, ptr, idx))
    assert better.dtype == tied.dtype == torch.int32
    return Ranks(better.cpu(), tied.cpu()).realistic


def assert_ranks_match(ranks, device, query, entities, target, ptr, idx):
    """Kernel ranks against float64 ranks: exact on the CPU, within the documented
    near-ties of the approximate square root on a GPU."""
    query, entities = query.double(), entities.double()
    distance = -rotate_scores_reference(query, entities, 0.0)  # [B, N] float64
    expected = Ranks.from_scores(-distance, target, ptr, idx).realistic
    if device.type == "cpu":
        torch.testing.assert_close(ranks, expected, rtol=0, atol=0)
        return
    rows = torch.arange(len(target))
    target_distance = distance[rows, target][:, None]
    tolerance = NEAR_TIE * (4 + query.size(1) // 2) * target_distance
    competing = torch.ones_like(distance, dtype=torch.bool)
    competing[torch.arange(len(target)).repeat_interleave(ptr.diff()), idx] = False
    competing[rows, target] = False
    lowest = 1 + ((distance < target_distance - tolerance) & competing).sum(1)
    highest = 1 + ((distance <= target_distance + tolerance) & competing).sum(1)
    assert ((lowest <= ranks) & (ranks <= highest)).all(), (ranks, expected)


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


def test_rotate_scores_keep_autograd_on_every_path(kernel_device):
    """With a gradient needed, the differentiable reference runs (the kernel is for
    inference), so scores are differentiable on both paths alike."""
    query, entities = on(kernel_device, *_embeddings(4, 9, 3, seed=3))
    query.requires_grad_()
    scores = rotate_scores(query, entities, 12.0)
    assert scores.grad_fn is not None
    (grad, ) = torch.autograd.grad(scores.sum(), query)
    reference = query.detach().double().requires_grad_()
    (expected, ) = torch.autograd.grad(rotate_scores_reference(reference, entities.double(),
                                                               12.0).sum(), reference)
    torch.testing.assert_close(grad.cpu().double(), expected.cpu(), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        assert rotate_scores(query, entities, 12.0).grad_fn is None


@pytest.mark.parametrize("B,N,k", SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rank_counts_match_float64(kernel_device, B, N, k, dtype):
    seed = 3 * B + N + k
    query, entities = _embeddings(B, N, k, seed, dtype)
    target = torch.randint(0, N, (B, ), generator=torch.Generator().manual_seed(seed))
    ptr, idx = _filters(B, N, target, seed, include_target=True)
    ranks = kernel_ranks(kernel_device, query, entities, target, ptr, idx)
    assert ranks.shape == (B, )
    assert_ranks_match(ranks, kernel_device, query, entities, target, ptr, idx)


def test_rank_counts_exact_ties_count_half(kernel_device):
    """Duplicated entity rows (the target's among them) tie exactly with the target."""
    B, N, k = 13, 37, 5
    query, entities = _embeddings(B, N, k, seed=7, duplicates=6)
    target = torch.arange(B) % 6  # every target has a duplicate at N - 6 + target
    ptr, idx = _filters(B, N, target, seed=7, max_len=3, include_target=True)
    ranks = kernel_ranks(kernel_device, query, entities, target, ptr, idx)
    scores = rotate_scores_reference(query.double(), entities.double(), 0.0)
    expected = _brute_force_ranks(scores, target, ptr, idx)
    torch.testing.assert_close(ranks, expected, rtol=0, atol=0)
    unfiltered_twin = [b for b in range(B) if N - 6 + int(target[b]) not in
                       idx[ptr[b]:ptr[b + 1]].tolist()]
    assert unfiltered_twin and all(ranks[b] % 1 == 0.5 for b in unfiltered_twin)


def test_rank_counts_filter_everything_but_target(kernel_device):
    B, N, k = 5, 13, 3
    query, entities = _embeddings(B, N, k, seed=11)
    target = torch.tensor([0, 4, 12, 7, 4])
    lists = [torch.tensor([n for n in range(N) if n != int(t) or b % 2]) for b, t in
             enumerate(target)]
    ptr = torch.tensor([0] + [len(x) for x in lists]).cumsum(0)
    ranks = kernel_ranks(kernel_device, query, entities, target, ptr, torch.cat(lists))
    torch.testing.assert_close(ranks, torch.ones(B), rtol=0, atol=0)


def test_rank_counts_empty_batch(kernel_device):
    query, entities = _embeddings(0, 5, 2, seed=0)
    ranks = kernel_ranks(kernel_device, query, entities, torch.zeros(0, dtype=torch.long),
                         torch.zeros(1, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    assert ranks.shape == (0, )


def test_torch_mode_runs_the_reference(monkeypatch):
    monkeypatch.setattr("mmkgc_pyg.kernels.utils._mode", "torch")
    query, entities = _embeddings(5, 13, 3, seed=1, dtype=torch.float64)
    # float64 output only comes from the reference path
    assert rotate_scores(query, entities, 12.0).dtype == torch.float64
    torch.testing.assert_close(rotate_scores(query, entities, 12.0),
                               rotate_scores_reference(query, entities, 12.0), rtol=0, atol=0)
    target, (ptr, idx) = torch.tensor([0, 1, 2, 3, 12]), _filters(5, 13, torch.zeros(5), 1)
    with pytest.raises(RuntimeError, match="Triton kernel only"):
        rotate_rank_counts(query, entities, target, ptr, idx)


def test_bad_shapes_raise_value_errors():
    query, entities = _embeddings(3, 4, 2, seed=0)
    with pytest.raises(ValueError, match="2k"):
        rotate_scores(query[:, :3], entities[:, :3], 12.0)
    with pytest.raises(ValueError, match="ptr"):
        rotate_rank_counts(query, entities, torch.zeros(3, dtype=torch.long),
                           torch.zeros(3, dtype=torch.long), torch.zeros(0, dtype=torch.long))


# ----------------------------------------------------------------------------- layout
def _chunked_counts(query, entities, target, ptr, idx, step):
    """Counts of queries ``step`` at a time (re-based filter lists), as evaluation calls."""
    parts = []
    for low in range(0, query.size(0), step):
        high = min(low + step, query.size(0))
        a, b = int(ptr[low]), int(ptr[high])
        parts.append(rotate_rank_counts(query[low:high], entities, target[low:high],
                                        ptr[low:high + 1] - a, idx[a:b]))
    return torch.cat([p[0] for p in parts]).cpu(), torch.cat([p[1] for p in parts]).cpu()


@pytest.mark.parametrize("N", [1, 16, 37])
def test_entity_columns_are_the_same_entities_read_in_place(kernel_device, N):
    B, k = 13, 5
    query, entities = on(kernel_device, *_embeddings(B, N, k, seed=N, duplicates=min(N // 4, 3)))
    target = torch.arange(B, device=kernel_device) % N
    ptr, idx = on(kernel_device, *_filters(B, N, target.cpu(), seed=N, include_target=True))
    table = rotate_entity_columns(entities)
    assert torch.equal(table, entities) and table.stride(0) == 1
    assert table.stride(1) % 16 == 0 and table.stride(1) >= N
    # The kernels take the table as it is: no transposed copy.
    assert rotate._columns(table, 16).data_ptr() == table.data_ptr()
    assert rotate._columns(entities, 16).data_ptr() != entities.data_ptr()
    whole = [c.cpu() for c in rotate_rank_counts(query, entities, target, ptr, idx)]
    for step in (1, 4, B):
        for counts, expected in zip(_chunked_counts(query, table, target, ptr, idx, step), whole):
            assert torch.equal(counts, expected)
    assert_ranks_match(Ranks(*whole).realistic, kernel_device, query.cpu(), entities.cpu(),
                       target.cpu(), ptr.cpu(), idx.cpu())
    assert torch.equal(rotate_scores(query, table, 12.0), rotate_scores(query, entities, 12.0))


def test_transposed_views_are_read_in_place_only_when_aligned(kernel_device):
    """A transposed view is read in place when its rows are padded to 16 and backed by
    memory; any other is copied, with the same counts."""
    B, N, k = 9, 37, 3
    query, entities = on(kernel_device, *_embeddings(B, N, k, seed=5))
    target = torch.arange(B, device=kernel_device) * 4
    ptr, idx = on(kernel_device, *_filters(B, N, target.cpu(), seed=5))
    expected = [c.cpu() for c in rotate_rank_counts(query, entities, target, ptr, idx)]
    padded = torch.full((2 * k, 48), float("nan"), device=kernel_device)  # padding unread
    padded[:, :N] = entities.t()
    unaligned = entities.t().contiguous().t()  # row stride 37
    for view, in_place in ((padded[:, :N].t(), True), (unaligned, False)):
        assert (rotate._columns(view, 16).data_ptr() == view.data_ptr()) == in_place
        counts = rotate_rank_counts(query, view, target, ptr, idx)
        assert all(torch.equal(c.cpu(), e) for c, e in zip(counts, expected))


def test_entity_columns_need_a_table():
    with pytest.raises(ValueError, match=r"\[N, 2k\]"):
        rotate_entity_columns(torch.zeros(4))


# ----------------------------------------------------------------------------- tiles
def test_tile_buckets_are_powers_of_two_capped_at_the_timed_slice():
    assert tile_buckets(1, 1) == (1, 1)
    assert tile_buckets(13, 37) == (16, 64)
    assert tile_buckets(19_804, 12_842) == (ROTATE_TUNE_PAIRS // 16_384, 16_384)  # DB15K
    big = tile_buckets(10_266, 4_594_485)  # Wikidata5M: the cap, whatever N
    assert big == tile_buckets(10_266, 2 * ROTATE_TUNE_ENTITIES + 1)
    assert big == (ROTATE_TUNE_PAIRS // ROTATE_TUNE_ENTITIES, ROTATE_TUNE_ENTITIES)
    for B, N in ((13, 37), (5000, 300_000), (3, 7)):
        queries, entities = tile_buckets(B, N)
        assert queries * entities <= max(ROTATE_TUNE_PAIRS, entities)
        assert min(B, queries) >= 1 and min(N, entities) >= 1
    cpu = torch.device("cpu")
    key = tile_key("counts", cpu, torch.float32, 250, *tile_buckets(19_804, 12_842))
    assert key == tile_key("counts", cpu, torch.float32, 250, *tile_buckets(9_000, 9_000))
    assert key != tile_key("counts", cpu, torch.float32, 250, *tile_buckets(19_804, 8_000))
    assert key != tile_key("scores", cpu, torch.float32, 250, *tile_buckets(19_804, 12_842))
    assert key != tile_key("counts", cpu, torch.bfloat16, 250, *tile_buckets(19_804, 12_842))
    assert key != tile_key("counts", cpu, torch.float32, 200, *tile_buckets(19_804, 12_842))


def test_fastest_tile_takes_the_least_time():
    times = iter([3.0, 2.0, 0.5, 1.0, 4.0])
    runs = []
    tile = fastest_tile(runs.append, lambda fn: (fn(), next(times))[1])
    assert tile == ROTATE_TILE_CONFIGS[2] and runs == ROTATE_TILE_CONFIGS


@pytest.fixture
def tile_cache(tmp_path, monkeypatch):
    """An empty tile cache file, and no tile chosen yet in this process."""
    monkeypatch.setenv("MMKGC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(rotate, "_tiles", None)
    return tile_cache_path()


def test_tile_cache_round_trip_and_corruption(tile_cache, monkeypatch):
    assert tile_cache.parent.exists() and load_tiles(tile_cache) == {}
    rotate._save_tile("a", ROTATE_TILE_CONFIGS[1])
    rotate._save_tile("b", ROTATE_TILE_CONFIGS[3])  # merged with what the file holds
    assert load_tiles(tile_cache) == {"a": ROTATE_TILE_CONFIGS[1], "b": ROTATE_TILE_CONFIGS[3]}
    for corrupt in (b"{not json", b"\xff\xfe", b"[1, 2]", b""):
        tile_cache.write_bytes(corrupt)
        assert load_tiles(tile_cache) == {}
    tile_cache.write_text(json.dumps({"a": {"BLOCK_B": 3}, "b": ROTATE_TILE_CONFIGS[0],
                                      "c": "tile"}))
    assert load_tiles(tile_cache) == {"b": ROTATE_TILE_CONFIGS[0]}  # unknown tiles left out
    tile_cache.write_bytes(b"{not json")
    rotate._save_tile("d", ROTATE_TILE_CONFIGS[4])  # a corrupt file is replaced
    assert load_tiles(tile_cache) == {"d": ROTATE_TILE_CONFIGS[4]}
    assert not list(tile_cache.parent.glob(".*.tmp"))
    monkeypatch.setenv("MMKGC_CACHE_DIR", str(tile_cache / "file_as_folder"))
    with pytest.warns(UserWarning, match="not saved"):
        rotate._save_tile("e", ROTATE_TILE_CONFIGS[0])


def test_chosen_tiles_count_and_score_as_the_fixed_tile(kernel_device, tile_cache,
                                                        monkeypatch):
    """The GPU's launcher, with a fake timing (timing means nothing in the interpreter):
    every candidate runs once per new key, the fastest is kept (in the process and in the
    cache file, which a corrupt file does not break), and the results equal the fixed
    tile's bitwise (the timing runs leave no trace in the counts)."""
    B, N, k = 13, 37, 5
    query, entities = on(kernel_device, *_embeddings(B, N, k, seed=2, duplicates=4))
    target = torch.arange(B, device=kernel_device) % N
    ptr, idx = on(kernel_device, *_filters(B, N, target.cpu(), seed=2, include_target=True))
    expected = [c.cpu() for c in rotate_rank_counts(query, entities, target, ptr, idx)]
    expected_scores = rotate_scores(query, entities, 12.0).cpu()

    fake_times = [3.0, 2.0, 4.0, 0.5, 1.0]  # ms of each candidate: the fourth is fastest
    timed = []

    def benchmark(fn):
        fn()
        timed.append(fn)
        return fake_times[(len(timed) - 1) % len(fake_times)]

    tile_cache.unlink(missing_ok=True)  # what a GPU chose for the expected results
    monkeypatch.setattr(rotate, "INTERPRETED", False)
    monkeypatch.setattr(rotate, "_tiles", None)
    monkeypatch.setattr(rotate, "_benchmark", benchmark)

    def check_counts(timings):
        counts = rotate_rank_counts(query, entities, target, ptr, idx)
        assert all(torch.equal(c.cpu(), e) for c, e in zip(counts, expected))
        assert len(timed) == timings

    check_counts(len(ROTATE_TILE_CONFIGS))
    assert torch.equal(rotate_scores(query, entities, 12.0).cpu(), expected_scores)
    assert len(timed) == 2 * len(ROTATE_TILE_CONFIGS)
    keys = [tile_key(name, kernel_device, torch.float32, k, *tile_buckets(B, N))
            for name in ("counts", "scores")]
    assert load_tiles(tile_cache) == {key: ROTATE_TILE_CONFIGS[3] for key in keys}
    check_counts(2 * len(ROTATE_TILE_CONFIGS))  # known in this process
    monkeypatch.setattr(rotate, "_tiles", None)
    check_counts(2 * len(ROTATE_TILE_CONFIGS))  # a new process reads the file
    tile_cache.write_bytes(b"{corrupt")
    monkeypatch.setattr(rotate, "_tiles", None)
    check_counts(3 * len(ROTATE_TILE_CONFIGS))  # timed again, and saved
    assert load_tiles(tile_cache) == {keys[0]: ROTATE_TILE_CONFIGS[3]}
