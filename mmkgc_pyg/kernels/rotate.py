r"""RotatE scores and filtered rank counts over all entities.

A query :math:`q \in \mathbb{C}^k` (the rotated head :math:`h \circ r`, or the
inverse-rotated tail) is scored against every entity :math:`e_n` by

.. math::
    s(q, e_n) = \gamma - \sum_{i=1}^{k} |q_i - e_{n,i}|,

with complex vectors stored as real ``[..., 2k]`` tensors (real half, then imaginary half).
Higher scores are better. For a target :math:`t` and the query's filter list :math:`F`
(the other known answers), :func:`rotate_rank_counts` gives

.. math::
    \mathrm{better} = |\{n \notin F \cup \{t\} : s_n > s_t\}|, \qquad
    \mathrm{tied} = |\{n \notin F \cup \{t\} : s_n = s_t\}|,

from which :class:`~mmkgc_pyg.evaluation.Ranks` derives optimistic, pessimistic and
realistic ranks. The kernel never materialises the ``[B, N]`` score matrix: tiles of
queries x entities accumulate distances in registers and reduce them to per-query counts;
the filtered entities' contributions are then subtracted using their short lists.
Kernels run as the custom ops ``mmkgc::rotate_scores`` and ``mmkgc::rotate_rank_counts``
(traceable by ``torch.compile``).

Layout. The kernels read queries and entities as columns, ``[2k, n_pad]``: dimension
:math:`i` of many entities is one contiguous row, zero-padded to ``n_pad`` (a multiple of
16). Queries (a chunk of a few thousand) are transposed by each call; the entity table (of
up to millions) is laid out once with :func:`rotate_entity_columns`, an ``[N, 2k]`` view that
the kernels read in place, so that ranking in chunks copies it once, not once per chunk.

Tiles. On a GPU a problem of ``B`` queries x ``N`` entities runs the fastest of a few tile
shapes for its key: device, Triton version, dtype, :math:`k` and the size buckets
:math:`(\min(2^{\lceil \log_2 B \rceil}, P / n), n)` with
:math:`n = \min(2^{\lceil \log_2 N \rceil}, E)` (:func:`tile_buckets`; :math:`E` and :math:`P`
are ``ROTATE_TUNE_ENTITIES`` and ``ROTATE_TUNE_PAIRS``). The first time a key is seen each
shape is timed on the problem's first :math:`\le n` entities and :math:`\le P / n` queries
(not on the whole ranking), and the choice is kept in a JSON file
(:func:`tile_cache_path`) for later processes. Every tile gives bitwise the same distances
(dimensions are summed in the same order), so the choice changes speed only.
"""
import json
import os
import warnings
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor

from mmkgc_pyg.errors import InvalidArgumentError, OutputError
from mmkgc_pyg.io import atomic_write_text
from mmkgc_pyg.kernels.utils import HAS_TRITON, INTERPRETED, tl, triton, use_triton
from mmkgc_pyg.score_blocks import check_csr, csr_rows

# RotatE ranking and scoring tiles. On a GPU each problem runs the fastest of
# ROTATE_TILE_CONFIGS for its bucket of sizes, timed once on a bounded slice of the problem
# (_launch_tiles); in the interpreter a small fixed tile (timing there means nothing). Each
# thread holds all BLOCK_B rows x 4 contiguous columns of its tile (rotate._distance):
# BLOCK_N = 128 * num_warps, and BLOCK_B * 4 accumulators per thread.
ROTATE_INTERPRETER_TILE = {"BLOCK_B": 8, "BLOCK_N": 16}
ROTATE_TILE_CONFIGS = [{"BLOCK_B": block_b, "BLOCK_N": block_n, "num_warps": warps}
                       for block_b, block_n, warps in ((8, 512, 4), (16, 512, 4), (32, 512, 4),
                                                       (16, 1024, 8), (32, 1024, 8))]
# The slice a tile is timed on: at most ROTATE_TUNE_ENTITIES entities (powers of two, a
# multiple of every BLOCK_N) and ROTATE_TUNE_PAIRS query x entity pairs, a few ms a run at
# k = 250 on an H100, however large the graph: enough tiles for many waves of programs.
ROTATE_TUNE_ENTITIES, ROTATE_TUNE_PAIRS = 1 << 17, 1 << 26
ROTATE_PAIR_BLOCK = 32 if INTERPRETED else 128
# Query columns are padded to a multiple of every BLOCK_B, so query loads need no mask;
# entity columns to a multiple of 16, so rows stay aligned for vector loads.
ROTATE_QUERY_PAD, ROTATE_ENTITY_PAD = 64, 16

# The reference broadcasts a chunk of queries against all entities; this bounds the size of
# each [chunk, N, 2k] temporary (in elements).
_CHUNK_ELEMENTS = 1 << 24


def check_complex_embeddings(query: Tensor, entities: Tensor) -> int:
    """Check ``query [B, 2k]`` and ``entities [N, 2k]``; return ``k``."""
    if (query.dim() != 2 or entities.dim() != 2 or query.size(1) != entities.size(1)
            or query.size(1) == 0 or query.size(1) % 2):
        raise InvalidArgumentError(
            "rotate: expected query [B, 2k] and entities [N, 2k] with the same even 2k > 0, "
            f"got {tuple(query.shape)} and {tuple(entities.shape)}")
    return query.size(1) // 2


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # bf16/fp16 are upcast (float32 accumulation, as in the kernels); float64 stays float64.
    return torch.promote_types(dtype, torch.float32)


def complex_distance(a: Tensor, b: Tensor) -> Tensor:
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


def rotate_scores_reference(query: Tensor, entities: Tensor, margin: float) -> Tensor:
    """Reference for :func:`rotate_scores`: chunked broadcast in PyTorch (differentiable)."""
    k = check_complex_embeddings(query, entities)
    step = max(1, _CHUNK_ELEMENTS // max(1, entities.size(0) * k))
    return torch.cat([margin - complex_distance(query[start:start + step, None], entities[None])
                      for start in range(0, query.size(0), step)]
                     or [query.new_zeros(0, entities.size(0), dtype=_compute_dtype(query.dtype))])


def rotate_scores(query: Tensor, entities: Tensor, margin: float) -> Tensor:
    r"""All-entity RotatE scores :math:`\gamma - \sum_i |q_{b,i} - e_{n,i}|`.

    Args:
        query: ``[B, 2k]`` complex queries (real half, imaginary half).
        entities: ``[N, 2k]`` complex entity embeddings (read in place when made by
            :func:`rotate_entity_columns`).
        margin: :math:`\gamma`.

    Returns:
        ``[B, N]`` float32 scores (float64 for float64 inputs on the reference path). The
        Triton kernel runs for inference; when a gradient is needed the (differentiable)
        reference runs instead, so both paths give the same results with or without autograd.
    """
    check_complex_embeddings(query, entities)
    needs_grad = torch.is_grad_enabled() and (query.requires_grad or entities.requires_grad)
    if needs_grad or not use_triton(query, entities):
        return rotate_scores_reference(query, entities, margin)
    return _scores_op(query, entities, float(margin))


@torch.library.custom_op("mmkgc::rotate_scores", mutates_args=())
def _scores_op(query: Tensor, entities: Tensor, margin: float) -> Tensor:
    B, N = query.size(0), entities.size(0)
    out = torch.empty(B, N, dtype=torch.float32, device=query.device)
    if B and N:
        _launch_tiles(_scores_kernel, "scores", _columns(query, ROTATE_QUERY_PAD),
                      _columns(entities, ROTATE_ENTITY_PAD), (out, margin), B, N)
    return out


@_scores_op.register_fake
def _(query, entities, margin):
    return query.new_empty(query.size(0), entities.size(0), dtype=torch.float32)


def rotate_rank_counts(query: Tensor, entities: Tensor, target: Tensor, filter_ptr: Tensor,
                       filter_idx: Tensor) -> Tuple[Tensor, Tensor]:
    r"""For each query, how many competing entities score better than ``target[b]`` and
    how many tie with it, streamed through the Triton kernel (no ``[B, N]`` scores).

    Competitors are all entities except the target and the query's filter list
    ``filter_idx[filter_ptr[b]:filter_ptr[b + 1]]`` (unique per query, may include the
    target, may be empty). The target's distance is computed with the same arithmetic as
    every candidate's, so identical entity rows tie exactly.
    :class:`~mmkgc_pyg.evaluation.Ranks` turns the counts into ranks. Ranking in chunks of
    queries, make ``entities`` once with :func:`rotate_entity_columns`: it is then read in
    place, not transposed again by every call.

    Returns:
        ``(better [B], tied [B])`` int32, on CUDA (or in Triton's interpreter).
    """
    check_complex_embeddings(query, entities)
    check_csr(query.size(0), filter_ptr, filter_idx, "rotate_rank_counts")
    if not use_triton(query, entities, target, filter_ptr, filter_idx):
        raise RuntimeError("rotate_rank_counts runs the Triton kernel only (CUDA tensors, or "
                           "Triton's interpreter); count from rotate_scores otherwise")
    return _rank_counts_op(query, entities, target, filter_ptr, filter_idx)


@torch.library.custom_op("mmkgc::rotate_rank_counts", mutates_args=())
def _rank_counts_op(query: Tensor, entities: Tensor, target: Tensor, filter_ptr: Tensor,
                    filter_idx: Tensor) -> Tuple[Tensor, Tensor]:
    B, N = query.size(0), entities.size(0)
    better = torch.zeros(B, dtype=torch.int32, device=query.device)
    tied = torch.zeros(B, dtype=torch.int32, device=query.device)
    if B == 0:
        return better, tied
    q_cols, e_cols = _columns(query, ROTATE_QUERY_PAD), _columns(entities, ROTATE_ENTITY_PAD)
    rows = csr_rows(filter_ptr, filter_idx.numel())

    # One pass computes the target distances and the filtered entities' distances with the
    # same arithmetic as the tiles, so comparisons against the target are exact.
    pair_query = torch.cat([torch.arange(B, device=query.device), rows])
    pair_entity = torch.cat([target, filter_idx])
    pair_dist = torch.empty(pair_query.numel(), dtype=torch.float32, device=query.device)
    _pair_distance_kernel[(triton.cdiv(pair_query.numel(), ROTATE_PAIR_BLOCK), )](
        q_cols, e_cols, pair_query, pair_entity, pair_dist, pair_query.numel(),
        *_strides(q_cols, e_cols), BLOCK_P=ROTATE_PAIR_BLOCK)
    target_dist, filtered_dist = pair_dist[:B], pair_dist[B:]
    _launch_tiles(_count_kernel, "counts", q_cols, e_cols, (target_dist, better, tied), B, N,
                  reset=(better, tied))

    # Take the filtered entities back out, and the target (it ties with itself).
    competing = filter_idx != target[rows]
    limit = target_dist[rows]
    better.index_add_(0, rows, ((filtered_dist < limit) & competing).int(), alpha=-1)
    tied.index_add_(0, rows, ((filtered_dist == limit) & competing).int(), alpha=-1)
    return better, tied - 1


@_rank_counts_op.register_fake
def _(query, entities, target, filter_ptr, filter_idx):
    B = query.size(0)
    return (query.new_empty(B, dtype=torch.int32), query.new_empty(B, dtype=torch.int32))


# ----------------------------------------------------------------------------- layout
def rotate_entity_columns(entities: Tensor) -> Tensor:
    """``entities [N, 2k]`` copied once into the layout the kernels read, and returned as an
    ``[N, 2k]`` view of it: the same values, a tensor like any other, but read in place by
    :func:`rotate_scores` and :func:`rotate_rank_counts` (which otherwise transpose their
    entities on every call). The layout is ``[2k, n_pad]`` (see :func:`_columns`), so the
    view has strides ``(1, n_pad)``."""
    if entities.dim() != 2:
        raise InvalidArgumentError(f"rotate_entity_columns: expected entities [N, 2k], got "
                                   f"{tuple(entities.shape)}")
    return _columns(entities, ROTATE_ENTITY_PAD)[:, :entities.size(0)].t()


def _columns(x: Tensor, multiple: int) -> Tensor:
    """``x [n, 2k]`` as ``[2k, n]`` columns with a row stride ``n_pad``, a multiple of
    ``multiple``, and memory behind every row up to ``n_pad`` (the kernels load up to it and
    mask what lies past ``n``), so that one dimension of many queries/entities is one
    contiguous row: ``x.t()`` itself when ``x`` is already laid out so (e.g. made by
    :func:`rotate_entity_columns`), else a zero-padded transposed copy (dtype kept)."""
    cols = x.t()
    stride = cols.stride(0)
    if (cols.stride(1) == 1 and stride >= cols.size(1) and stride % multiple == 0
            and (cols.storage_offset() + cols.size(0) * stride) * cols.element_size()
            <= cols.untyped_storage().nbytes()):
        return cols
    copy = x.new_zeros(x.size(1), -(-x.size(0) // multiple) * multiple)
    copy[:, :x.size(0)] = cols
    return copy


def _strides(q_cols: Tensor, e_cols: Tensor):
    """Kernel arguments locating dimension i: row stride and offset of the imaginary half."""
    k = q_cols.size(0) // 2
    q_stride, e_stride = q_cols.stride(0), e_cols.stride(0)
    return q_stride, e_stride, k * q_stride, k * e_stride, k


# ----------------------------------------------------------------------------- tiles
def _launch_tiles(kernel, name: str, q_cols: Tensor, e_cols: Tensor, outputs: tuple, B: int,
                  N: int, reset: Sequence[Tensor] = ()) -> None:
    """``kernel(q_cols, e_cols, *outputs, B, N, *strides)`` over tiles of BLOCK_B queries x
    BLOCK_N entities. On a GPU the tile is the one cached for this problem's key
    (:func:`tile_key`), timed the first time the key is seen (in any process) by running
    each candidate on the problem's first ``min(B, queries)`` queries and ``min(N,
    entities)`` entities of its buckets; ``reset`` are outputs those runs accumulate into,
    zeroed after them."""
    strides = _strides(q_cols, e_cols)

    def run(tile: dict, queries: int, entities: int) -> None:
        grid = (triton.cdiv(queries, tile["BLOCK_B"]), triton.cdiv(entities, tile["BLOCK_N"]))
        kernel[grid](q_cols, e_cols, *outputs, queries, entities, *strides, **tile)

    if INTERPRETED:
        run(ROTATE_INTERPRETER_TILE, B, N)
        return
    queries, entities = tile_buckets(B, N)
    key = tile_key(name, e_cols.device, e_cols.dtype, strides[-1], queries, entities)
    tiles = _known_tiles()
    if key not in tiles:
        queries, entities = min(B, queries), min(N, entities)
        tiles[key] = fastest_tile(lambda tile: run(tile, queries, entities), _benchmark)
        for output in reset:
            output.zero_()
        _save_tile(key, tiles[key])
    run(tiles[key], B, N)


def tile_buckets(B: int, N: int) -> Tuple[int, int]:
    """The size buckets ``(queries, entities)`` of a ``B x N`` problem: the next powers of
    two, capped where the slice a tile is timed on stops growing (``ROTATE_TUNE_ENTITIES``
    entities, ``ROTATE_TUNE_PAIRS`` pairs)."""
    entities = min(1 << max(N - 1, 0).bit_length(), ROTATE_TUNE_ENTITIES)
    return min(1 << max(B - 1, 0).bit_length(), ROTATE_TUNE_PAIRS // entities), entities


def tile_key(name: str, device: torch.device, dtype: torch.dtype, K: int, queries: int,
             entities: int) -> str:
    """Key of the tile cache: the kernel, the device's name, Triton's version, the entity
    dtype, ``K`` complex dimensions and the size buckets (:func:`tile_buckets`)."""
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    dtype_name = str(dtype).removeprefix("torch.")
    return (f"{name}|{device_name}|triton {triton.__version__}|{dtype_name}|K={K}|"
            f"B<={queries}|N<={entities}")


def fastest_tile(run: Callable[[dict], None], benchmark: Callable[[Callable], float]) -> dict:
    """The tile of ``ROTATE_TILE_CONFIGS`` whose ``run(tile)`` takes least time by
    ``benchmark`` (a function of a call, returning its time)."""
    return min(ROTATE_TILE_CONFIGS, key=lambda tile: benchmark(lambda: run(tile)))


def _benchmark(fn: Callable) -> float:
    """Milliseconds of a call of ``fn`` on the GPU: the median of a few after a warm-up."""
    from triton.testing import do_bench
    return do_bench(fn, warmup=5, rep=25, return_mode="median")


def tile_cache_path() -> Path:
    """The file the chosen tiles persist in across processes: ``rotate_tiles.json`` in
    ``$MMKGC_CACHE_DIR``, else in ``mmkgc_pyg`` under the user's cache folder
    (``$XDG_CACHE_HOME``, default ``~/.cache``)."""
    folder = os.environ.get("MMKGC_CACHE_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mmkgc_pyg"
    return Path(folder) / "rotate_tiles.json"


def load_tiles(path: Path) -> Dict[str, dict]:
    """The tiles a cache file holds, by key; a missing or corrupt file holds none, and an
    entry that is not one of ``ROTATE_TILE_CONFIGS`` is left out."""
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(entries, dict):
        return {}
    return {key: tile for key, tile in entries.items() if tile in ROTATE_TILE_CONFIGS}


# The tiles chosen or read so far in this process (read from the cache file at first use).
_tiles: Optional[Dict[str, dict]] = None


def _known_tiles() -> Dict[str, dict]:
    global _tiles
    if _tiles is None:
        _tiles = load_tiles(tile_cache_path())
    return _tiles


def _save_tile(key: str, tile: dict) -> None:
    """Adds one choice to the cache file (merged with what other processes wrote there;
    replaced atomically). Unwritable, the choice still holds in this process."""
    path = tile_cache_path()
    try:
        atomic_write_text(path, json.dumps({**load_tiles(path), key: tile}, indent=1,
                                           sort_keys=True))
    except OutputError as exc:
        warnings.warn(f"RotatE tile cache not saved: {exc}", stacklevel=2)


if HAS_TRITON:
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
