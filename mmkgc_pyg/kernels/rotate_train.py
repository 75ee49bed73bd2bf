r"""RotatE scores of each query against its own candidate entities, for training.

.. math::
    s_{b,c} = \gamma - \sum_{i=1}^{k} |q_{b,i} - e_{\mathrm{index}[b,c],i}|

with complex vectors stored as real ``[..., 2k]`` tensors (real half, then imaginary half).
With :math:`z = q - e`, :math:`\partial |z| / \partial \mathrm{Re}\, z = \mathrm{Re}\, z / |z|`
(likewise for the imaginary part), taken as 0 where :math:`z = 0`, so

.. math::
    \frac{\partial s_{b,c}}{\partial q_b} = -\frac{z_{b,c}}{|z_{b,c}|}, \qquad
    \frac{\partial s_{b,c}}{\partial e_{\mathrm{index}[b,c]}} = +\frac{z_{b,c}}{|z_{b,c}|}.

The Triton forward gathers the candidate rows inside the kernel (no ``[B, C, 2k]`` copy).
The backward is deterministic: every gradient row is a sum in a fixed order, written once.

* Query :math:`b`: :math:`-\sum_c g_{b,c} z_{b,c} / |z_{b,c}|` for :math:`c = 0, \ldots, C-1`
  in turn (one program per query and block of complex dims).
* Entity :math:`n`: the flattened index ``[B*C]`` is stably sorted, so the positions
  :math:`(b, c)` naming :math:`n` form one segment, in row-major order; one program per
  segment (and block of complex dims) adds their contributions
  :math:`g_{b,c} z_{b,c} / |z_{b,c}|` one at a time in that order and writes row :math:`n`
  once. Rows no candidate names stay 0.

Both sums add one term at a time in fp32, so the result does not depend on the launch
settings (block sizes, unrolling) and is bitwise the same from call to call, eager or
replayed in a CUDA graph (the sort is on the device, shapes are static, nothing syncs).
The reference gathers with :func:`torch.nn.functional.embedding`, whose CPU backward also
sums each row in index order (``entities[index]`` would accumulate with parallel atomics).
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmkgc_pyg.errors import InvalidArgumentError
from mmkgc_pyg.kernels.rotate import check_complex_embeddings, complex_distance
from mmkgc_pyg.kernels.utils import HAS_TRITON, INTERPRETED, tl, triton, use_triton

# RotatE training scores: blocks of BLOCK_C candidates x BLOCK_K complex dimensions.
GATHER_BLOCKS = ({"BLOCK_C": 8, "BLOCK_K": 8} if INTERPRETED else
                 {"BLOCK_C": 16, "BLOCK_K": 64, "num_warps": 4})
# Their gradients: one gradient row's block of BLOCK_K complex dims per program, adding
# UNROLL terms per loop step (loads issued together, additions still one at a time).
GATHER_BACKWARD_BLOCKS = ({"BLOCK_K": 8, "UNROLL": 2} if INTERPRETED else
                          {"BLOCK_K": 256, "UNROLL": 4, "num_warps": 2})


def _check_index(query: Tensor, index: Tensor) -> None:
    if (index.dim() != 2 or index.size(0) != query.size(0) or index.dtype.is_floating_point
            or index.dtype == torch.bool):
        raise InvalidArgumentError(
            f"rotate_gather_scores: expected an integer index [{query.size(0)}, C], "
            f"got {index.dtype} {tuple(index.shape)}")


def rotate_gather_scores_reference(query: Tensor, entities: Tensor, index: Tensor,
                                   margin: float) -> Tensor:
    """Reference for :func:`rotate_gather_scores`: gather, then PyTorch autograd
    (deterministic on the CPU: the gather is an embedding lookup)."""
    check_complex_embeddings(query, entities)
    _check_index(query, index)
    return margin - complex_distance(query[:, None], F.embedding(index.long(), entities))


def rotate_gather_scores(query: Tensor, entities: Tensor, index: Tensor,
                         margin: float) -> Tensor:
    r"""RotatE scores of query ``b`` against entities ``index[b, :]``, differentiable in
    ``query`` and ``entities``.

    Args:
        query: ``[B, 2k]`` complex queries (e.g. :math:`h \circ r`).
        entities: ``[N, 2k]`` complex entity embeddings.
        index: ``[B, C]`` candidate entities per query (repeats allowed).
        margin: :math:`\gamma`.

    Returns:
        ``[B, C]`` float32 scores (float64 for float64 inputs on the reference path).
        The Triton path is the custom op ``mmkgc::rotate_gather_scores``.
    """
    check_complex_embeddings(query, entities)
    _check_index(query, index)
    if not use_triton(query, entities, index):
        return rotate_gather_scores_reference(query, entities, index, margin)
    return _gather_op(query, entities, index, float(margin))


@torch.library.custom_op("mmkgc::rotate_gather_scores", mutates_args=())
def _gather_op(query: Tensor, entities: Tensor, index: Tensor, margin: float) -> Tensor:
    query, entities, index = query.contiguous(), entities.contiguous(), index.contiguous()
    (B, C), K = index.shape, query.size(1) // 2
    out = torch.empty(B, C, dtype=torch.float32, device=query.device)
    if out.numel():
        grid = (B, triton.cdiv(C, GATHER_BLOCKS["BLOCK_C"]))
        _gather_forward_kernel[grid](query, entities, index, out, margin, C, K, **GATHER_BLOCKS)
    return out


@_gather_op.register_fake
def _(query, entities, index, margin):
    return query.new_empty(index.shape, dtype=torch.float32)


@torch.library.custom_op("mmkgc::rotate_gather_scores_backward", mutates_args=())
def _gather_backward_op(query: Tensor, entities: Tensor, index: Tensor,
                        grad_out: Tensor) -> Tuple[Tensor, Tensor]:
    query, entities, index = query.contiguous(), entities.contiguous(), index.contiguous()
    (B, C), K = index.shape, query.size(1) // 2
    grad_query = torch.zeros(query.shape, dtype=torch.float32, device=query.device)
    grad_entities = torch.zeros(entities.shape, dtype=torch.float32, device=query.device)
    M = B * C
    if M:
        grad_out = grad_out.float().contiguous()
        k_blocks = triton.cdiv(K, GATHER_BACKWARD_BLOCKS["BLOCK_K"])
        _query_gradient_kernel[(B, k_blocks)](query, entities, index, grad_out, grad_query, C,
                                              K, **GATHER_BACKWARD_BLOCKS)
        # Segments of the sorted index: entity rows[starts[g]] at sorted positions
        # starts[g] ... starts[g + 1] - 1; starts[g] = M for g past the last segment.
        rows, order = torch.sort(index.reshape(-1), stable=True)
        new_row = torch.ones(M, dtype=torch.bool, device=index.device)
        new_row[1:] = rows[1:] != rows[:-1]
        segments = min(M, entities.size(0))  # static bound on their number
        starts = torch.searchsorted(new_row.cumsum(0) - 1,
                                    torch.arange(segments + 1, device=index.device))
        _entity_gradient_kernel[(segments, k_blocks)](
            query, entities, rows, order, starts, grad_out, grad_entities, C, K,
            **GATHER_BACKWARD_BLOCKS)
    return grad_query, grad_entities


@_gather_backward_op.register_fake
def _(query, entities, index, grad_out):
    return (query.new_empty(query.shape, dtype=torch.float32),
            entities.new_empty(entities.shape, dtype=torch.float32))


def _setup_context(ctx, inputs, output):
    query, entities, index, _ = inputs
    ctx.save_for_backward(query, entities, index)


def _backward(ctx, grad_out: Tensor):
    query, entities, index = ctx.saved_tensors
    grad_query, grad_entities = _gather_backward_op(query, entities, index, grad_out)
    return grad_query.to(query.dtype), grad_entities.to(entities.dtype), None, None


_gather_op.register_autograd(_backward, setup_context=_setup_context)


if HAS_TRITON:
    # K (complex dims) is a compile-time constant so that row offsets 2K are known
    # multiples: aligned vector loads for even K (one compilation per embedding size).
    @triton.jit
    def _difference(query_ptr, entities_ptr, rows, b, offs_k, mask_c, mask_k,
                    K: tl.constexpr):
        """Real and imaginary parts of ``q_b - e_rows`` on a [BLOCK_C, BLOCK_K] block of
        candidates x complex dims, in fp32."""
        q_re_ptrs = query_ptr + b.to(tl.int64) * 2 * K + offs_k
        e_re_ptrs = entities_ptr + rows.to(tl.int64)[:, None] * 2 * K + offs_k[None, :]
        mask = mask_c[:, None] & mask_k[None, :]
        q_re = tl.load(q_re_ptrs, mask=mask_k, other=0.0).to(tl.float32)
        q_im = tl.load(q_re_ptrs + K, mask=mask_k, other=0.0).to(tl.float32)
        e_re = tl.load(e_re_ptrs, mask=mask, other=0.0).to(tl.float32)
        e_im = tl.load(e_re_ptrs + K, mask=mask, other=0.0).to(tl.float32)
        return q_re[None, :] - e_re, q_im[None, :] - e_im

    @triton.jit
    def _gather_forward_kernel(query_ptr, entities_ptr, index_ptr, out_ptr, margin, C,
                               K: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr):
        """Program (b, j): scores of query b against candidates j*BLOCK_C ... (j+1)*BLOCK_C-1."""
        b = tl.program_id(0)
        offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        mask_c = offs_c < C
        rows = tl.load(index_ptr + b.to(tl.int64) * C + offs_c, mask=mask_c, other=0)
        dist = tl.zeros([BLOCK_C, BLOCK_K], dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            z_re, z_im = _difference(query_ptr, entities_ptr, rows, b, offs_k, mask_c,
                                     offs_k < K, K)
            dist += tl.sqrt(z_re * z_re + z_im * z_im)
        tl.store(out_ptr + b.to(tl.int64) * C + offs_c, margin - tl.sum(dist, axis=1),
                 mask=mask_c)

    @triton.jit
    def _unit_gradient(q_re, q_im, e_re, e_im, grad):
        """``grad * z / |z|`` with ``z = q - e`` (0 where z = 0): the term of ``e``'s
        gradient, in fp32."""
        z_re = q_re - e_re
        z_im = q_im - e_im
        modulus = tl.sqrt(z_re * z_re + z_im * z_im)
        nonzero = modulus > 0
        scale = tl.where(nonzero, grad / tl.where(nonzero, modulus, 1.0), 0.0)
        return scale * z_re, scale * z_im

    @triton.jit
    def _query_gradient_kernel(query_ptr, entities_ptr, index_ptr, grad_out_ptr,
                               grad_query_ptr, C, K: tl.constexpr, BLOCK_K: tl.constexpr,
                               UNROLL: tl.constexpr):
        """Program (b, j): complex dims j*BLOCK_K ... of query b's gradient, the sum over its
        candidates c = 0, 1, ... in that order."""
        b = tl.program_id(0).to(tl.int64)
        offs_k = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
        mask_k = offs_k < K
        q_re = tl.load(query_ptr + b * 2 * K + offs_k, mask=mask_k, other=0.0).to(tl.float32)
        q_im = tl.load(query_ptr + b * 2 * K + K + offs_k, mask=mask_k,
                       other=0.0).to(tl.float32)
        acc_re = tl.zeros([BLOCK_K], dtype=tl.float32)
        acc_im = tl.zeros([BLOCK_K], dtype=tl.float32)
        # The flat positions b * C + c of the query's candidates.
        start = b * C
        end = start + C
        for p0 in range(start, end, UNROLL):
            for u in tl.static_range(UNROLL):
                valid = p0 + u < end
                dims = offs_k < tl.where(valid, K, 0)  # no dims for a term past the end
                row = tl.load(index_ptr + p0 + u, mask=valid, other=0).to(tl.int64)
                grad = tl.load(grad_out_ptr + p0 + u, mask=valid, other=0.0)
                e_ptrs = entities_ptr + row * 2 * K + offs_k
                e_re = tl.load(e_ptrs, mask=dims, other=0.0).to(tl.float32)
                e_im = tl.load(e_ptrs + K, mask=dims, other=0.0).to(tl.float32)
                g_re, g_im = _unit_gradient(q_re, q_im, e_re, e_im, grad)
                # d s / d q = -z / |z|; masked terms are skipped, not added as (signed) 0.
                acc_re = tl.where(valid, acc_re - g_re, acc_re)
                acc_im = tl.where(valid, acc_im - g_im, acc_im)
        q_ptrs = grad_query_ptr + b * 2 * K + offs_k
        tl.store(q_ptrs, acc_re, mask=mask_k)
        tl.store(q_ptrs + K, acc_im, mask=mask_k)

    @triton.jit
    def _entity_gradient_kernel(query_ptr, entities_ptr, rows_ptr, order_ptr, starts_ptr,
                                grad_out_ptr, grad_entities_ptr, C, K: tl.constexpr,
                                BLOCK_K: tl.constexpr, UNROLL: tl.constexpr):
        """Program (g, j): complex dims j*BLOCK_K ... of the gradient of segment g's entity,
        the sum over the segment's sorted positions in order; past the last segment (an
        empty one), nothing."""
        g = tl.program_id(0)
        start = tl.load(starts_ptr + g)
        end = tl.load(starts_ptr + g + 1)
        if start >= end:
            return
        row = tl.load(rows_ptr + start).to(tl.int64)
        offs_k = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
        mask_k = offs_k < K
        e_re = tl.load(entities_ptr + row * 2 * K + offs_k, mask=mask_k,
                       other=0.0).to(tl.float32)
        e_im = tl.load(entities_ptr + row * 2 * K + K + offs_k, mask=mask_k,
                       other=0.0).to(tl.float32)
        acc_re = tl.zeros([BLOCK_K], dtype=tl.float32)
        acc_im = tl.zeros([BLOCK_K], dtype=tl.float32)
        for p0 in range(start, end, UNROLL):
            for u in tl.static_range(UNROLL):
                valid = p0 + u < end
                dims = offs_k < tl.where(valid, K, 0)  # no dims for a term past the end
                flat = tl.load(order_ptr + p0 + u, mask=valid, other=0)  # b * C + c
                grad = tl.load(grad_out_ptr + flat, mask=valid, other=0.0)
                q_ptrs = query_ptr + flat // C * 2 * K + offs_k
                q_re = tl.load(q_ptrs, mask=dims, other=0.0).to(tl.float32)
                q_im = tl.load(q_ptrs + K, mask=dims, other=0.0).to(tl.float32)
                g_re, g_im = _unit_gradient(q_re, q_im, e_re, e_im, grad)
                acc_re = tl.where(valid, acc_re + g_re, acc_re)
                acc_im = tl.where(valid, acc_im + g_im, acc_im)
        e_ptrs = grad_entities_ptr + row * 2 * K + offs_k
        tl.store(e_ptrs, acc_re, mask=mask_k)
        tl.store(e_ptrs + K, acc_im, mask=mask_k)
