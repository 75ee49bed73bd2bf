r"""RotatE scoring and filtered ranking over all entities.

A query :math:`q \in \mathbb{C}^k` (the rotated head :math:`h \circ r`, or the
inverse-rotated tail) is scored against every entity :math:`e_n` by

.. math::
    s(q, e_n) = \gamma - \sum_{i=1}^{k} |q_i - e_{n,i}|,

with complex vectors stored as real ``[..., 2k]`` tensors (real half, then imaginary half).
Higher scores are better. The filtered realistic rank of the target entity :math:`t` is

.. math::
    \mathrm{rank} = 1 + |\{n \notin F : s_n > s_t\}|
                     + \tfrac12 |\{n \notin F \cup \{t\} : s_n = s_t\}|,

where :math:`F` is the query's filter list (the other known answers).

Each public function runs a Triton kernel or its plain-PyTorch reference (same semantics),
as chosen by :func:`~mmkgc_pyg.kernels.dispatch.use_triton`.
The Triton ranking never materialises the ``[B, N]`` score matrix: tiles of queries x entities
accumulate distances in registers and reduce them to per-query counts in the kernel; the
filtered entities' contributions are then subtracted using their short lists.
"""
import torch

from mmkgc_pyg.errors import UserInputError
from mmkgc_pyg.kernels.dispatch import HAS_TRITON, interpreter_enabled, use_triton

# The references broadcast a chunk of queries against all entities; this bounds the size of
# each [chunk, N, 2k] temporary (in elements).
_CHUNK_ELEMENTS = 1 << 24


def check_complex_embeddings(query: torch.Tensor, entities: torch.Tensor) -> int:
    """Check ``query [B, 2k]`` and ``entities [N, 2k]``; return ``k``."""
    if (query.dim() != 2 or entities.dim() != 2 or query.size(1) != entities.size(1)
            or query.size(1) == 0 or query.size(1) % 2):
        raise UserInputError(
            "rotate: expected query [B, 2k] and entities [N, 2k] with the same even 2k > 0, "
            f"got {tuple(query.shape)} and {tuple(entities.shape)}")
    return query.size(1) // 2


def _check_filter(num_queries: int, filter_ptr: torch.Tensor, filter_idx: torch.Tensor) -> None:
    if filter_ptr.shape != (num_queries + 1, ) or filter_idx.dim() != 1:
        raise UserInputError(
            f"rotate: expected filter_ptr [{num_queries + 1}] and a 1-D filter_idx, "
            f"got {tuple(filter_ptr.shape)} and {tuple(filter_idx.shape)}")


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # bf16/fp16 are upcast (float32 accumulation, as in the kernels); float64 stays float64.
    return torch.promote_types(dtype, torch.float32)


def complex_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Reference :math:`\sum_i |a_i - b_i|` over the complex dims of broadcastable
    ``[..., 2k]`` tensors, computed in at least float32.

    Differentiable, with gradient 0 where :math:`a_i = b_i` (where :math:`|z|` has none).
    """
    dtype = _compute_dtype(a.dtype)
    re, im = (a.to(dtype) - b.to(dtype)).chunk(2, dim=-1)
    squared = re * re + im * im
    if not (torch.is_grad_enabled() and squared.requires_grad):
        return squared.sqrt().sum(-1)
    # sqrt's derivative is infinite at 0; keep 0 out of it so the gradient there is 0, not NaN.
    nonzero = squared > 0
    return torch.where(nonzero, torch.where(nonzero, squared, 1.0).sqrt(), 0.0).sum(-1)


def _chunks(num_queries: int, elements_per_query: int):
    """Query ranges ``(start, stop)`` whose references stay within ``_CHUNK_ELEMENTS``."""
    step = max(1, _CHUNK_ELEMENTS // max(1, elements_per_query))
    for start in range(0, num_queries, step):
        yield start, min(start + step, num_queries)


def filter_rows(filter_ptr: torch.Tensor, filter_idx: torch.Tensor) -> torch.Tensor:
    """The query of every filter entry: ``[nnz]`` (CSR ``ptr`` expanded)."""
    num_queries = filter_ptr.numel() - 1
    return torch.arange(num_queries, device=filter_idx.device).repeat_interleave(
        filter_ptr.diff().to(filter_idx.device), output_size=filter_idx.numel())


def _slice_filter(filter_ptr, filter_idx, bounds: list, start: int, stop: int):
    """The CSR filter lists of queries ``start:stop``, re-based to start at 0
    (``bounds = filter_ptr.tolist()``, read once rather than once per chunk)."""
    return filter_ptr[start:stop + 1] - bounds[start], filter_idx[bounds[start]:bounds[stop]]


def _filter_mask(filter_ptr, filter_idx, num_entities: int) -> torch.Tensor:
    """Boolean ``[B, N]`` mask of the filtered (query, entity) pairs."""
    mask = torch.zeros(filter_ptr.numel() - 1, num_entities, dtype=torch.bool,
                       device=filter_idx.device)
    mask[filter_rows(filter_ptr, filter_idx), filter_idx] = True
    return mask


def rank_from_scores(scores: torch.Tensor, target: torch.Tensor, filter_ptr: torch.Tensor,
                     filter_idx: torch.Tensor) -> torch.Tensor:
    r"""Filtered realistic rank of ``target[b]`` among the scores ``[B, N]`` of any scorer
    (higher is better): :math:`1 + \#\text{better} + \#\text{tied} / 2`, ignoring the
    entities ``filter_idx[filter_ptr[b]:filter_ptr[b+1]]`` and the target itself.

    Returns float32 ``[B]``.
    """
    _check_filter(scores.size(0), filter_ptr, filter_idx)
    rows = torch.arange(scores.size(0), device=scores.device)
    ignore = _filter_mask(filter_ptr, filter_idx, scores.size(1))
    ignore[rows, target] = True  # the target is never its own competitor
    target_score = scores[rows, target][:, None]
    better = ((scores > target_score) & ~ignore).sum(1)
    tied = ((scores == target_score) & ~ignore).sum(1)
    return (1 + better + 0.5 * tied).float()


def rotate_scores_reference(query: torch.Tensor, entities: torch.Tensor,
                            margin: float) -> torch.Tensor:
    """Reference for :func:`rotate_scores`: chunked broadcast in PyTorch."""
    k = check_complex_embeddings(query, entities)
    out = torch.empty(query.size(0), entities.size(0), dtype=_compute_dtype(query.dtype),
                      device=query.device)
    for start, stop in _chunks(query.size(0), entities.size(0) * k):
        out[start:stop] = margin - complex_distance(query[start:stop, None], entities[None])
    return out


def rotate_filtered_ranks_reference(query: torch.Tensor, entities: torch.Tensor,
                                    target: torch.Tensor, filter_ptr: torch.Tensor,
                                    filter_idx: torch.Tensor) -> torch.Tensor:
    """Reference for :func:`rotate_filtered_ranks`: chunked scores, then
    :func:`rank_from_scores`."""
    k = check_complex_embeddings(query, entities)
    _check_filter(query.size(0), filter_ptr, filter_idx)
    ranks = torch.empty(query.size(0), dtype=torch.float32, device=query.device)
    bounds = filter_ptr.tolist()
    for start, stop in _chunks(query.size(0), entities.size(0) * k):
        scores = -complex_distance(query[start:stop, None], entities[None])
        ranks[start:stop] = rank_from_scores(
            scores, target[start:stop], *_slice_filter(filter_ptr, filter_idx, bounds, start, stop))
    return ranks


def rotate_scores(query: torch.Tensor, entities: torch.Tensor, margin: float) -> torch.Tensor:
    r"""All-entity RotatE scores :math:`\gamma - \sum_i |q_{b,i} - e_{n,i}|`.

    Args:
        query: ``[B, 2k]`` complex queries (real half, imaginary half).
        entities: ``[N, 2k]`` complex entity embeddings.
        margin: :math:`\gamma`.

    Returns:
        ``[B, N]`` float32 scores (float64 for float64 inputs on the reference path).
    """
    check_complex_embeddings(query, entities)
    if not use_triton(query, entities):
        return rotate_scores_reference(query, entities, margin)
    B, N = query.size(0), entities.size(0)
    out = torch.empty(B, N, dtype=torch.float32, device=query.device)
    if B and N:
        q_cols, e_cols = _columns(query, _QUERY_PAD), _columns(entities, _ENTITY_PAD)
        _launch_tiles(_scores_kernel, _scores_kernel_tuned, B, N, q_cols, e_cols, out,
                      float(margin), B, N, *_strides(q_cols, e_cols))
    return out


def rotate_filtered_ranks(query: torch.Tensor, entities: torch.Tensor, target: torch.Tensor,
                          filter_ptr: torch.Tensor, filter_idx: torch.Tensor) -> torch.Tensor:
    """Filtered realistic rank of entity ``target[b]`` for query ``b`` among all entities.

    Args:
        query: ``[B, 2k]`` complex queries.
        entities: ``[N, 2k]`` complex entity embeddings.
        target: ``[B]`` index of the true answer of each query.
        filter_ptr: ``[B + 1]`` CSR offsets into ``filter_idx``.
        filter_idx: ``[nnz]`` entities to ignore per query (other known answers; unique per
            query, may include the target, may be empty).

    Returns:
        ``[B]`` float32 ranks, 1-based; ties with other entities count half.
    """
    check_complex_embeddings(query, entities)
    _check_filter(query.size(0), filter_ptr, filter_idx)
    if not use_triton(query, entities, target, filter_ptr, filter_idx):
        return rotate_filtered_ranks_reference(query, entities, target, filter_ptr, filter_idx)
    B, N = query.size(0), entities.size(0)
    if B == 0:
        return torch.empty(0, dtype=torch.float32, device=query.device)
    q_cols, e_cols = _columns(query, _QUERY_PAD), _columns(entities, _ENTITY_PAD)
    strides = _strides(q_cols, e_cols)
    rows = filter_rows(filter_ptr, filter_idx)

    # One pass computes the target distances and the filtered entities' distances with the
    # same arithmetic as the tiles, so comparisons against the target are exact.
    pair_query = torch.cat([torch.arange(B, device=query.device), rows])
    pair_entity = torch.cat([target, filter_idx])
    pair_dist = torch.empty(pair_query.numel(), dtype=torch.float32, device=query.device)
    _pair_distance_kernel[(triton.cdiv(pair_query.numel(), _PAIR_BLOCK), )](
        q_cols, e_cols, pair_query, pair_entity, pair_dist, pair_query.numel(), *strides,
        BLOCK_P=_PAIR_BLOCK)
    target_dist, filtered_dist = pair_dist[:B], pair_dist[B:]

    better = torch.zeros(B, dtype=torch.int32, device=query.device)
    tied = torch.zeros(B, dtype=torch.int32, device=query.device)
    _launch_tiles(_count_kernel, _count_kernel_tuned, B, N, q_cols, e_cols, target_dist, better,
                  tied, B, N, *strides)

    # Take the filtered entities back out; the target is removed below (it ties with itself).
    competing = filter_idx != target[rows]
    limit = target_dist[rows]
    better.index_add_(0, rows, ((filtered_dist < limit) & competing).int(), alpha=-1)
    tied.index_add_(0, rows, ((filtered_dist == limit) & competing).int(), alpha=-1)
    return 1 + better + 0.5 * (tied - 1)


def rotate_topk(query: torch.Tensor, entities: torch.Tensor, margin: float, k: int,
                filter_ptr: torch.Tensor = None, filter_idx: torch.Tensor = None):
    """The ``k`` best-scoring entities per query (for prediction).

    Args:
        query, entities, margin: as in :func:`rotate_scores`.
        k: how many; clamped to the number of entities.
        filter_ptr, filter_idx: optional CSR lists of entities to exclude per query (they
            score ``-inf``, so they only appear when fewer than ``k`` others remain).

    Returns:
        ``(scores [B, k], indices [B, k])``, best first.
    """
    check_complex_embeddings(query, entities)
    if (filter_ptr is None) != (filter_idx is None):
        raise UserInputError("rotate_topk: expected both filter_ptr and filter_idx, or neither")
    if filter_ptr is not None:
        _check_filter(query.size(0), filter_ptr, filter_idx)
    if k < 1:
        raise UserInputError(f"rotate_topk: expected k >= 1, got {k}")
    B, N = query.size(0), entities.size(0)
    k = min(k, N)
    scores = torch.empty(B, k, dtype=torch.float32, device=query.device)
    indices = torch.empty(B, k, dtype=torch.long, device=query.device)
    bounds = None if filter_ptr is None else filter_ptr.tolist()
    for start, stop in _chunks(B, N):
        chunk = rotate_scores(query[start:stop], entities, margin).float()
        if filter_ptr is not None:
            chunk.masked_fill_(
                _filter_mask(*_slice_filter(filter_ptr, filter_idx, bounds, start, stop), N),
                float("-inf"))
        scores[start:stop], indices[start:stop] = chunk.topk(k, dim=1)
    return scores, indices


# Triton decides between compiling and interpreting when the kernels are decorated (import).
_INTERPRETED = interpreter_enabled()
# Tile shapes: autotuned on a GPU (once per (N, k)); small and fixed in the interpreter,
# where autotuning would be slow.
_INTERPRETER_TILE = {"BLOCK_B": 8, "BLOCK_N": 16}
_PAIR_BLOCK = 32 if _INTERPRETED else 128
# Query columns are padded to a multiple of every BLOCK_B, so query loads need no mask;
# entity columns to a multiple of 16, so rows stay aligned for vector loads.
_QUERY_PAD, _ENTITY_PAD = 64, 16


def _columns(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``x [n, 2k]`` transposed to ``[2k, n_pad]`` (zero-padded columns, dtype kept), so that
    one dimension of many queries/entities is one contiguous row."""
    n_pad = -(-x.size(0) // multiple) * multiple
    cols = x.new_zeros(x.size(1), n_pad)
    cols[:, :x.size(0)] = x.t()
    return cols


def _strides(q_cols: torch.Tensor, e_cols: torch.Tensor):
    """Kernel arguments locating dimension i: row stride and offset of the imaginary half."""
    k = q_cols.size(0) // 2
    return q_cols.size(1), e_cols.size(1), k * q_cols.size(1), k * e_cols.size(1), k


def _launch_tiles(kernel, tuned_kernel, B: int, N: int, *args) -> None:
    def grid(meta):
        return triton.cdiv(B, meta["BLOCK_B"]), triton.cdiv(N, meta["BLOCK_N"])

    if _INTERPRETED:
        kernel[grid](*args, **_INTERPRETER_TILE)
    else:
        tuned_kernel[grid](*args)


if HAS_TRITON:
    import triton
    import triton.language as tl

    # Each thread ends up holding all BLOCK_B rows x 4 contiguous columns of its tile (see
    # _distance): BLOCK_N = 128 * num_warps, and BLOCK_B * 4 accumulators per thread.
    _TILE_CONFIGS = [
        triton.Config({"BLOCK_B": block_b, "BLOCK_N": block_n}, num_warps=warps)
        for block_b, block_n, warps in ((8, 512, 4), (16, 512, 4), (32, 512, 4), (16, 1024, 8),
                                        (32, 1024, 8))
    ]

    @triton.jit
    def _distance(dist, q_ptr, e_ptr, q_offs, e_offs, e_mask, q_stride, e_stride, q_imag,
                  e_imag, K, OUTER: tl.constexpr):
        """Add ``sum_i |q_i - e_i|`` to ``dist``, reading the transposed ``[2k, n_pad]``
        layouts: dimension i of column j is at ``ptr + i * stride + j``, its imaginary part
        ``imag`` further on.

        ``OUTER``: ``q_offs [BLOCK_B]`` against ``e_offs [1, BLOCK_N]``, an outer-product
        update of a [queries, entities] tile; else query ``q_offs[p]`` against entity
        ``e_offs[p]``. The dimensions are summed in order, one at a time, so each (query,
        entity) pair gets bitwise the same result whatever the tile shape.
        """
        for _ in range(K):
            qr = tl.load(q_ptr + q_offs).to(tl.float32)
            qi = tl.load(q_ptr + q_imag + q_offs).to(tl.float32)
            # A 2-D [1, BLOCK_N] load anchors the tile's layout: coalesced, 4 contiguous
            # entities per thread, each thread covering all BLOCK_B queries, i.e. a few
            # vector loads per 4 * BLOCK_B moduli.
            er = tl.load(e_ptr + e_offs, mask=e_mask, other=0.0).to(tl.float32)
            ei = tl.load(e_ptr + e_imag + e_offs, mask=e_mask, other=0.0).to(tl.float32)
            if OUTER:
                qr = qr[:, None]
                qi = qi[:, None]
            dr = qr - er
            di = qi - ei
            # An explicit fma leaves the compiler no contraction choices that could differ
            # between kernels.
            dist += tl.sqrt(tl.fma(dr, dr, di * di))
            q_ptr += q_stride
            e_ptr += e_stride
        return dist

    @triton.jit
    def _tile_distance(q_cols_ptr, e_cols_ptr, q_stride, e_stride, q_imag, e_imag, K,
                       BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr):
        """Distances of this program's tile of BLOCK_B queries x BLOCK_N entities."""
        offs_b = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
        offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        dist = _distance(tl.zeros([BLOCK_B, BLOCK_N], dtype=tl.float32), q_cols_ptr, e_cols_ptr,
                         offs_b, offs_n[None, :], offs_n[None, :] < e_stride, q_stride, e_stride,
                         q_imag, e_imag, K, OUTER=True)
        return dist, offs_b, offs_n

    @triton.jit
    def _scores_kernel(q_cols_ptr, e_cols_ptr, out_ptr, margin, B, N, q_stride, e_stride, q_imag,
                       e_imag, K, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr):
        dist, offs_b, offs_n = _tile_distance(q_cols_ptr, e_cols_ptr, q_stride, e_stride, q_imag,
                                              e_imag, K, BLOCK_B, BLOCK_N)
        out_ptrs = out_ptr + offs_b.to(tl.int64)[:, None] * N + offs_n[None, :]
        tl.store(out_ptrs, margin - dist, mask=(offs_b < B)[:, None] & (offs_n < N)[None, :])

    @triton.jit
    def _count_kernel(q_cols_ptr, e_cols_ptr, target_dist_ptr, better_ptr, tied_ptr, B, N,
                      q_stride, e_stride, q_imag, e_imag, K, BLOCK_B: tl.constexpr,
                      BLOCK_N: tl.constexpr):
        """Per query: how many of this tile's entities are closer than the target, and how
        many are exactly as close (the target itself included)."""
        dist, offs_b, offs_n = _tile_distance(q_cols_ptr, e_cols_ptr, q_stride, e_stride, q_imag,
                                              e_imag, K, BLOCK_B, BLOCK_N)
        mask_b = offs_b < B
        target_dist = tl.load(target_dist_ptr + offs_b, mask=mask_b, other=0.0)[:, None]
        entity = (offs_n < N)[None, :]
        better = tl.sum(((dist < target_dist) & entity).to(tl.int32), axis=1)
        tied = tl.sum(((dist == target_dist) & entity).to(tl.int32), axis=1)
        tl.atomic_add(better_ptr + offs_b, better, mask=mask_b, sem="relaxed")
        tl.atomic_add(tied_ptr + offs_b, tied, mask=mask_b, sem="relaxed")

    @triton.jit
    def _pair_distance_kernel(q_cols_ptr, e_cols_ptr, query_ptr, entity_ptr, out_ptr, P,
                              q_stride, e_stride, q_imag, e_imag, K, BLOCK_P: tl.constexpr):
        """``out[p] = sum_i |q[query[p], i] - e[entity[p], i]|``, same arithmetic as the tiles."""
        offs = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
        mask = offs < P
        query = tl.load(query_ptr + offs, mask=mask, other=0)
        entity = tl.load(entity_ptr + offs, mask=mask, other=0)
        dist = _distance(tl.zeros([BLOCK_P], dtype=tl.float32), q_cols_ptr, e_cols_ptr, query,
                         entity, mask, q_stride, e_stride, q_imag, e_imag, K, OUTER=False)
        tl.store(out_ptr + offs, dist, mask=mask)

    _scores_kernel_tuned = triton.autotune(_TILE_CONFIGS, key=["N", "K"])(_scores_kernel)
    _count_kernel_tuned = triton.autotune(_TILE_CONFIGS, key=["N", "K"],
                                          reset_to_zero=["better_ptr", "tied_ptr"])(_count_kernel)
