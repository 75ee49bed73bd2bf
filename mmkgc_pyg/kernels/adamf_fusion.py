r"""Fused AdaMF attention: one pass over the modality embeddings.

For entity :math:`n` with modality embeddings :math:`e_{n,m} \in \mathbb{R}^D`
(modality 0 is the structural embedding) and the shared attention vector :math:`w`:

.. math::
    u_{n,m} = w \cdot \tanh(e_{n,m}), \qquad
    a_{n,m} = \frac{\mathbb{1}[\text{present}_{n,m}]\, e^{u_{n,m}}}
                   {\sum_{j\,\text{present}} e^{u_{n,j}}}, \qquad
    j_n = \sum_m a_{n,m}\, e_{n,m}.

Absent modalities get weight exactly ``0.0``. Column 0 is always treated as present
(whatever the mask says), so every softmax has at least one term and an entity without
extra modalities falls back to its structural embedding (weight 1).

Dtypes: everything is computed in float32. ``joint`` is returned in ``embs.dtype`` (it
replaces an embedding downstream); ``weights`` are always float32 (they are the
interpretable output and bf16 would round e.g. 1/3 visibly).

The Triton path reads ``embs`` once in the forward and once in the backward and never
materialises an ``[N, M, D]`` temporary: each program holds all M modality rows of a few
entities in registers (a ``[BLOCK_N, M_PAD, BLOCK_D]`` tile), so the softmax over M needs
no rescaling and the backward gets the exact fp32 ``sum_j a_j (g . e_j)`` without a saved,
possibly bf16-rounded, joint. Registers grow with M, which is small here (3-4 modalities).
:func:`adamf_fusion_reference` is the plain PyTorch version with identical semantics.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from mmkgc_pyg.errors import InvalidArgumentError
from mmkgc_pyg.kernels.utils import HAS_TRITON, max_programs, tl, triton, use_triton

_DTYPES = (torch.float32, torch.bfloat16, torch.float16)

# AdaMF fusion: floats per [BLOCK_N, M_PAD, BLOCK_D] tile (~32 registers a thread at 4
# warps), and the blocks of the deterministic sum of the attention-gradient partials.
FUSION_TILE = 4096
FUSION_SUM_BLOCKS = {"BLOCK_P": 32, "BLOCK_D": 128}


def fusion_blocks(m_pad: int, d: int) -> Tuple[int, int, int]:
    """(BLOCK_N, BLOCK_D, num_warps) of the fusion kernels: whole rows of all ``m_pad``
    (a power of two) modalities in registers."""
    block_d = max(16, triton.next_power_of_2(d))
    row = m_pad * block_d
    block_n = max(1, min(16, FUSION_TILE // row))
    return block_n, block_d, max(4, min(16, 4 * row // FUSION_TILE))


def _check(embs: Tensor, attn: Tensor, mask: Optional[Tensor]) -> None:
    if embs.dim() != 3 or not embs.is_floating_point():
        raise InvalidArgumentError(f"adamf_fusion: embs: expected a float tensor [N, M, D], "
                                   f"got {embs.dtype} of shape {tuple(embs.shape)}")
    n, m, d = embs.shape
    if m < 1:
        raise InvalidArgumentError("adamf_fusion: embs: expected at least one modality, got M = 0")
    if attn.shape != (d, ):
        raise InvalidArgumentError(f"adamf_fusion: attn: expected shape ({d},), got "
                                   f"{tuple(attn.shape)}")
    if mask is not None and (mask.dtype != torch.bool or mask.shape != (n, m)):
        raise InvalidArgumentError(f"adamf_fusion: mask: expected a bool tensor of shape ({n}, "
                                   f"{m}), "
                                   f"got {mask.dtype} of shape {tuple(mask.shape)}")


def adamf_fusion_reference(embs: Tensor, attn: Tensor,
                           mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    r"""Plain PyTorch AdaMF fusion (autograd through ordinary ops).

    Computes in ``promote(embs.dtype, float32)``: float32 for float32/bf16 inputs,
    float64 for float64 inputs (so tests can use it as a float64 oracle). Returns
    ``joint`` in ``embs.dtype`` and ``weights`` in the compute dtype.
    """
    _check(embs, attn, mask)
    dtype = torch.promote_types(embs.dtype, torch.float32)
    e = embs.to(dtype)
    u = torch.tanh(e) @ attn.to(dtype)  # [N, M]
    if mask is None:
        weights = torch.softmax(u, dim=-1)
    else:
        present = mask.clone()
        present[:, 0] = True  # the structural embedding is always there
        weights = torch.softmax(u.masked_fill(~present, float("-inf")), dim=-1)
        weights = weights.masked_fill(~present, 0.0)
    joint = torch.bmm(weights.unsqueeze(1), e).squeeze(1)
    return joint.to(embs.dtype), weights


def adamf_fusion(embs: Tensor, attn: Tensor,
                 mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    r"""AdaMF attention fusion of ``M`` modality embeddings per entity.

    Args:
        embs: ``[N, M, D]`` float32/bfloat16/float16, modality 0 = structural embedding.
        attn: ``[D]`` shared attention vector.
        mask: optional bool ``[N, M]``, ``True`` = present. Column 0 is always treated as
            present.

    Returns:
        ``(joint [N, D] in embs.dtype, weights [N, M] float32)``; absent weights are
        exactly 0. Differentiable in ``embs`` and ``attn`` (gradients may flow into both
        outputs). Runs the Triton kernels (the custom op ``mmkgc::adamf_fusion``, which
        ``torch.compile`` traces) when :func:`~mmkgc_pyg.kernels.utils.use_triton` says
        so, else :func:`adamf_fusion_reference`.
    """
    _check(embs, attn, mask)
    if embs.dtype not in _DTYPES:
        raise InvalidArgumentError(f"adamf_fusion: embs: expected float32, bfloat16 or float16, "
                                   f"got {embs.dtype}")
    tensors = (embs, attn) if mask is None else (embs, attn, mask)
    if not use_triton(*tensors):
        return adamf_fusion_reference(embs, attn, mask)
    return _fusion_op(embs, attn, mask)


@torch.library.custom_op("mmkgc::adamf_fusion", mutates_args=())
def _fusion_op(embs: Tensor, attn: Tensor, mask: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    embs, attn = embs.contiguous(), attn.contiguous()
    n, m, d = embs.shape
    joint = embs.new_empty(n, d)
    weights = embs.new_empty(n, m, dtype=torch.float32)
    if n > 0:
        block_n, block_d, warps = fusion_blocks(_m_pad(m), d)
        # uint8 has the bytes of torch.bool and loads in every Triton version.
        mask_u8 = weights if mask is None else mask.contiguous().view(torch.uint8)
        _fwd_kernel[(triton.cdiv(n, block_n), )](
            embs, attn, mask_u8, joint, weights, n, D=d, M=m, M_PAD=_m_pad(m),
            HAS_MASK=mask is not None, BLOCK_N=block_n, BLOCK_D=block_d, num_warps=warps)
    return joint, weights


@_fusion_op.register_fake
def _(embs, attn, mask):
    n, m, d = embs.shape
    return embs.new_empty(n, d), embs.new_empty(n, m, dtype=torch.float32)


@torch.library.custom_op("mmkgc::adamf_fusion_backward", mutates_args=())
def _fusion_backward_op(embs: Tensor, attn: Tensor, weights: Tensor,
                        grad_joint: Optional[Tensor],
                        grad_weights: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    embs = embs.contiguous()
    n, m, d = embs.shape
    grad_attn = torch.zeros(d, device=embs.device, dtype=torch.float32)
    if n == 0 or (grad_joint is None and grad_weights is None):
        return torch.zeros_like(embs), grad_attn
    grad_embs = torch.empty_like(embs)
    block_n, block_d, warps = fusion_blocks(_m_pad(m), d)
    num_blocks = triton.cdiv(n, block_n)
    programs = min(num_blocks, max_programs(embs.device))
    partials = embs.new_empty(programs, d, dtype=torch.float32)
    # A missing upstream gradient is never read (HAS_G / HAS_GW): any pointer will do.
    g = weights if grad_joint is None else grad_joint.contiguous()
    gw = weights if grad_weights is None else grad_weights.contiguous()
    _bwd_kernel[(programs, )](
        embs, attn.contiguous(), weights, g, gw, grad_embs, partials, n, num_blocks, D=d, M=m,
        M_PAD=_m_pad(m), HAS_G=grad_joint is not None, HAS_GW=grad_weights is not None,
        BLOCK_N=block_n, BLOCK_D=block_d, num_warps=warps)
    _sum_rows_kernel[(triton.cdiv(d, FUSION_SUM_BLOCKS["BLOCK_D"]), )](
        partials, grad_attn, programs, d, **FUSION_SUM_BLOCKS)
    return grad_embs, grad_attn


@_fusion_backward_op.register_fake
def _(embs, attn, weights, grad_joint, grad_weights):
    return torch.empty_like(embs), attn.new_empty(attn.shape, dtype=torch.float32)


def _setup_context(ctx, inputs, output):
    embs, attn, _ = inputs
    ctx.save_for_backward(embs, attn, output[1])
    ctx.set_materialize_grads(False)  # an unused output costs no zero tensor


def _backward(ctx, grad_joint: Optional[Tensor], grad_weights: Optional[Tensor]):
    embs, attn, weights = ctx.saved_tensors
    grad_embs, grad_attn = _fusion_backward_op(embs, attn, weights, grad_joint, grad_weights)
    return grad_embs, grad_attn.to(attn.dtype), None


_fusion_op.register_autograd(_backward, setup_context=_setup_context)


def _m_pad(m: int) -> int:
    return triton.next_power_of_2(m)


if HAS_TRITON:

    @triton.jit
    def _tanh(x):
        # tanh(|x|) = (1 - e) / (1 + e) with e = exp(-2|x|) <= 1: no overflow for any x,
        # and older Triton releases have no tl.tanh.
        e = tl.exp(-2.0 * tl.abs(x))
        t = (1.0 - e) / (1.0 + e)
        return tl.where(x < 0, -t, t)

    # D is a compile-time constant: row offsets are then known multiples of D, so for
    # D % 4 == 0 (e.g. 500) the loads vectorise; a runtime D that is not a multiple of 16
    # gives scalar loads. One compilation per embedding size.
    @triton.jit
    def _tile(row_block, N, D: tl.constexpr, M: tl.constexpr, M_PAD: tl.constexpr,
              BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
        """Offsets and bounds of one block of rows: e as [BLOCK_N, M_PAD, BLOCK_D],
        weights as [BLOCK_N, M_PAD], joint as [BLOCK_N, BLOCK_D]."""
        rows = row_block * BLOCK_N + tl.arange(0, BLOCK_N)
        mods = tl.arange(0, M_PAD)
        cols = tl.arange(0, BLOCK_D)
        rows64 = rows.to(tl.int64)  # N * M * D may exceed 2**31
        row_ok = rows < N
        w_off = rows64[:, None] * M + mods[None, :]
        w_ok = row_ok[:, None] & (mods < M)[None, :]
        j_off = rows64[:, None] * D + cols[None, :]
        j_ok = row_ok[:, None] & (cols < D)[None, :]
        e_off = w_off[:, :, None] * D + cols[None, None, :]
        e_ok = w_ok[:, :, None] & (cols < D)[None, None, :]
        return e_off, e_ok, w_off, w_ok, j_off, j_ok

    @triton.jit
    def _fwd_kernel(embs_ptr, attn_ptr, mask_ptr, joint_ptr, weights_ptr, N, D: tl.constexpr,
                    M: tl.constexpr, M_PAD: tl.constexpr, HAS_MASK: tl.constexpr,
                    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
        # Fused-softmax style: BLOCK_N entities with all their M modality rows in
        # registers, so e is read once and only joint and weights are written.
        e_off, e_ok, w_off, w_ok, j_off, j_ok = _tile(tl.program_id(0), N, D, M, M_PAD,
                                                      BLOCK_N, BLOCK_D)
        cols = tl.arange(0, BLOCK_D)
        a = tl.load(attn_ptr + cols, mask=cols < D, other=0.0).to(tl.float32)
        e = tl.load(embs_ptr + e_off, mask=e_ok, other=0.0).to(tl.float32)
        u = tl.sum(_tanh(e) * a[None, None, :], axis=2)

        # Column 0 is always present: every softmax (padding rows too) has a finite term.
        first = (tl.arange(0, M_PAD) == 0)[None, :]
        if HAS_MASK:
            present = first | (tl.load(mask_ptr + w_off, mask=w_ok, other=0) != 0)
        else:
            present = first | w_ok
        u = tl.where(present, u, float("-inf"))  # exp(-inf) = 0: absent weights exactly 0
        p = tl.exp(u - tl.max(u, axis=1)[:, None])
        w = p / tl.sum(p, axis=1)[:, None]

        joint = tl.sum(w[:, :, None] * e, axis=1)
        tl.store(joint_ptr + j_off, joint.to(joint_ptr.dtype.element_ty), mask=j_ok)
        tl.store(weights_ptr + w_off, w, mask=w_ok)

    @triton.jit
    def _bwd_kernel(embs_ptr, attn_ptr, weights_ptr, grad_joint_ptr, grad_weights_ptr,
                    grad_embs_ptr, partials_ptr, N, NUM_BLOCKS, D: tl.constexpr,
                    M: tl.constexpr, M_PAD: tl.constexpr, HAS_G: tl.constexpr,
                    HAS_GW: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
        # With g = dL/djoint, gw = dL/dweights and t = tanh(e), per entity:
        #   dw_m = g . e_m + gw_m,   s = sum_j w_j dw_j,   du_m = w_m (dw_m - s)
        #   de_m = w_m g + du_m attn (1 - t_m^2),   dattn = sum_{n,m} du_m t_m
        # All M rows of a block are in registers, so s is exact in fp32 without a saved
        # (possibly bf16-rounded) joint. Absent modalities have w = 0, hence de = 0.
        # Each program walks a strided set of row blocks and writes its own dattn
        # partial (no atomics: deterministic); _sum_rows_kernel adds the partials.
        cols = tl.arange(0, BLOCK_D)
        a = tl.load(attn_ptr + cols, mask=cols < D, other=0.0).to(tl.float32)
        dattn = tl.zeros([BLOCK_D], tl.float32)
        for blk in range(tl.program_id(0), NUM_BLOCKS, tl.num_programs(0)):
            e_off, e_ok, w_off, w_ok, j_off, j_ok = _tile(blk, N, D, M, M_PAD, BLOCK_N,
                                                          BLOCK_D)
            e = tl.load(embs_ptr + e_off, mask=e_ok, other=0.0).to(tl.float32)
            w = tl.load(weights_ptr + w_off, mask=w_ok, other=0.0)
            dw = tl.zeros([BLOCK_N, M_PAD], tl.float32)
            if HAS_G:
                g = tl.load(grad_joint_ptr + j_off, mask=j_ok, other=0.0).to(tl.float32)
                dw += tl.sum(g[:, None, :] * e, axis=2)
            if HAS_GW:
                dw += tl.load(grad_weights_ptr + w_off, mask=w_ok, other=0.0).to(tl.float32)
            du = w * (dw - tl.sum(w * dw, axis=1)[:, None])
            t = _tanh(e)
            de = du[:, :, None] * a[None, None, :] * (1.0 - t * t)
            if HAS_G:
                de += w[:, :, None] * g[:, None, :]
            tl.store(grad_embs_ptr + e_off, de.to(grad_embs_ptr.dtype.element_ty), mask=e_ok)
            dattn += tl.sum(tl.sum(du[:, :, None] * t, axis=1), axis=0)
        tl.store(partials_ptr + tl.program_id(0).to(tl.int64) * D + cols, dattn, mask=cols < D)

    @triton.jit
    def _sum_rows_kernel(x_ptr, out_ptr, P, D, BLOCK_P: tl.constexpr, BLOCK_D: tl.constexpr):
        # out[d] = sum_p x[p, d], in a fixed order (deterministic).
        cols = tl.program_id(0) * BLOCK_D + tl.arange(0, BLOCK_D)
        col_ok = cols < D
        acc = tl.zeros([BLOCK_D], tl.float32)
        for start in range(0, P, BLOCK_P):
            rows = start + tl.arange(0, BLOCK_P)
            ok = (rows < P)[:, None] & col_ok[None, :]
            acc += tl.sum(tl.load(x_ptr + rows[:, None] * D + cols[None, :], mask=ok, other=0.0),
                          axis=0)
        tl.store(out_ptr + cols, acc, mask=col_ok)
