r"""One lazy-Adam step over the rows a training step touched, in one kernel launch and
without a host synchronisation (capturable in a CUDA graph).

For the touched rows :math:`i` with gradients :math:`g_i` and the table's step count
:math:`t \ge 1` (:class:`~mmkgc_pyg.training.lazy_adam.LazyAdam`):

.. math::
    m_i \leftarrow \beta_1 m_i + (1 - \beta_1) g_i, \quad
    v_i \leftarrow \beta_2 v_i + (1 - \beta_2) g_i^2, \quad
    w_i \leftarrow w_i + \frac{-\eta}{1 - \beta_1^t} \frac{m_i}{\sqrt{v_i / (1 - \beta_2^t)}
        + \epsilon}.

The rows come as a static-size buffer ``rows [S]`` whose first ``count`` entries are
distinct (``count`` a 0-d tensor on the device); the rest is padding, never updated. The
updates are computed in float32, with IEEE division and square root, and the table is
stored back in its dtype (float32, bfloat16 or float16); moments are float32.

Scalars. PyTorch rounds each Python-float scalar of the eager step (:math:`\beta_1`,
:math:`1 - \beta_1`, :math:`\beta_2`, :math:`1 - \beta_2`, :math:`1 - \beta_2^t`,
:math:`-\eta / (1 - \beta_1^t)`, :math:`\epsilon`) once to float32. The kernel gets
:math:`\eta, \beta_1, \beta_2` bit for bit (as float64 bit patterns) and the step count on
the device, and computes the same expressions in float64 before rounding them once to
float32. Only :math:`\beta^t` differs from Python's ``beta ** t``: binary exponentiation
in float64, whose relative error is at most about :math:`t \cdot 2^{-53}` (squarings double
it), so :math:`1 - \beta^t` is off by at most :math:`t \cdot 2^{-53} \beta^t / (1 - \beta^t)`
relative, e.g. below :math:`10^{-12}` for :math:`t \le 10^4` with
:math:`\beta_2 = 0.999`. The float32 values therefore agree with Python's unless the float64
value falls within that distance of a float32 rounding boundary, where they differ by one
float32 ulp (:math:`2^{-24}` relative).

Grid: programs over (block of ``BLOCK_R`` buffer positions, block of ``BLOCK_D`` columns);
a program whose positions all lie past ``count`` returns at once. The touched rows are
distinct, so no two programs write the same element (no atomics), and each element's
update is a fixed sequence of operations: results are bitwise reproducible.
"""
import math
import struct

import torch
from torch import Tensor

from mmkgc_pyg.errors import InvalidArgumentError
from mmkgc_pyg.kernels.utils import HAS_TRITON, INTERPRETED, tl, triton, use_triton

# Blocks of BLOCK_R touched rows x BLOCK_D columns.
LAZY_ADAM_BLOCKS = ({"BLOCK_R": 2, "BLOCK_D": 4} if INTERPRETED else
                    {"BLOCK_R": 4, "BLOCK_D": 256, "num_warps": 4})

_FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _check(param: Tensor, moments: Tensor, rows: Tensor, count: Tensor, grad: Tensor,
           step: Tensor, lr: float, beta1: float, beta2: float, eps: float) -> None:
    row_shape = tuple(param.shape[1:])
    if (param.dim() < 1 or param.dtype not in _FLOAT_DTYPES or not param.is_contiguous()
            or moments.shape != (param.size(0), 2, *row_shape)
            or moments.dtype != torch.float32 or not moments.is_contiguous()
            or rows.dim() != 1 or rows.dtype not in (torch.int32, torch.int64)
            or grad.shape != (rows.size(0), *row_shape) or grad.dtype not in _FLOAT_DTYPES
            or count.dim() != 0 or count.dtype not in (torch.int32, torch.int64)
            or step.dim() != 0 or step.dtype not in (torch.float32, torch.int64)
            or len({t.device for t in (param, moments, rows, count, grad, step)}) != 1):
        raise InvalidArgumentError(
            "lazy_adam_step_: expected on one device a contiguous float32/bfloat16/float16 "
            "param [N, ...], contiguous float32 moments [N, 2, ...], integer rows [S], "
            "floating grad [S, ...], a 0-d integer count and a 0-d float32 or int64 step; got "
            + ", ".join(f"{name} {t.dtype} {tuple(t.shape)} on {t.device}" for name, t in (
                ("param", param), ("moments", moments), ("rows", rows), ("count", count),
                ("grad", grad), ("step", step))))
    if not 0.0 < lr or not 0.0 <= beta1 < 1.0 or not 0.0 <= beta2 < 1.0 or eps < 0:
        raise InvalidArgumentError(f"lazy_adam_step_: expected lr > 0, betas in [0, 1), "
                                   f"eps >= 0, got lr={lr}, betas=({beta1}, {beta2}), eps={eps}")


def lazy_adam_step_reference_(param: Tensor, moments: Tensor, rows: Tensor, count: Tensor,
                              grad: Tensor, step: Tensor, lr: float, beta1: float, beta2: float,
                              eps: float) -> None:
    """Reference for :func:`lazy_adam_step_` in PyTorch (same arguments): the eager
    ``LazyAdam`` arithmetic over all ``S`` buffer positions, without a host sync.

    Padding positions must not write their row (its valid twin does), and ``index_copy_``
    keeps an arbitrary one of duplicate writes, so every padding position writes position
    0's row with position 0's result: duplicates carry identical bits. (With ``count = 0``
    that result is the row unchanged.)
    """
    _check(param, moments, rows, count, grad, step, lr, beta1, beta2, eps)
    size, rows = rows.size(0), rows.long()
    table, state = param.view(param.size(0), -1), moments.view(param.size(0), 2, -1)
    grad = grad.reshape(size, -1).float()
    position = torch.arange(size, device=rows.device)
    valid = position < count
    old_state = state.index_select(0, rows)
    exp_avg = old_state[:, 0].mul(beta1).add_(grad, alpha=1 - beta1)
    exp_avg_sq = old_state[:, 1].mul(beta2).addcmul_(grad, grad, value=1 - beta2)
    t = step.double()
    step_size = (-lr / (1 - beta1 ** t)).float()
    bias2 = (1 - beta2 ** t).float()
    denom = (exp_avg_sq / bias2).sqrt_().add_(eps)
    old_rows = table.index_select(0, rows)
    # addcdiv's order: w + (value * m) / denom.
    new_rows = (old_rows.float() + step_size * exp_avg / denom).to(param.dtype)
    new_rows = torch.where(valid[:, None], new_rows, old_rows)
    new_state = torch.where(valid[:, None, None], torch.stack([exp_avg, exp_avg_sq], 1),
                            old_state)
    source = torch.where(valid, position, 0)
    target = rows[source]
    table.index_copy_(0, target, new_rows[source])
    state.index_copy_(0, target, new_state[source])


def lazy_adam_step_(param: Tensor, moments: Tensor, rows: Tensor, count: Tensor, grad: Tensor,
                    step: Tensor, lr: float, beta1: float, beta2: float, eps: float) -> None:
    r"""One lazy-Adam step, in place, on rows ``rows[:count]`` of ``param`` and ``moments``
    (module docstring); the Triton kernel on CUDA, :func:`lazy_adam_step_reference_`
    elsewhere. Call it under :func:`torch.no_grad`.

    Args:
        param: ``[N, ...]`` table (contiguous; float32, bfloat16 or float16).
        moments: ``[N, 2, ...]`` float32 (contiguous): ``exp_avg`` and ``exp_avg_sq`` of
            each row side by side.
        rows: ``[S]`` int64 (or int32) row ids; the first ``count`` distinct, the rest
            padding (repeating valid ids), left alone.
        count: 0-d integer tensor, ``0 <= count <= S`` (a larger one counts as ``S``).
        grad: ``[S, ...]`` gradient of each buffer position's row (float32, bfloat16 or
            float16; padding rows are ignored, whatever their values).
        step: 0-d step count :math:`t \ge 1` on the device, incremented by the caller before
            the call: int64, or float32 (exact up to :math:`2^{24}` steps).
        lr, beta1, beta2, eps: as in :class:`torch.optim.Adam`.
    """
    _check(param, moments, rows, count, grad, step, lr, beta1, beta2, eps)
    if use_triton(param, moments, rows, count, grad, step):
        _lazy_adam_op(param, moments, rows, count, grad, step, float(lr), float(beta1),
                      float(beta2), float(eps))
    else:
        lazy_adam_step_reference_(param, moments, rows, count, grad, step, lr, beta1, beta2,
                                  eps)


def _bits(value: float) -> int:
    """The float64 bit pattern of ``value``: a kernel argument that keeps every bit (a
    float argument would be rounded to float32)."""
    return struct.unpack("<q", struct.pack("<d", value))[0]


@torch.library.custom_op("mmkgc::lazy_adam_step", mutates_args=("param", "moments"))
def _lazy_adam_op(param: Tensor, moments: Tensor, rows: Tensor, count: Tensor, grad: Tensor,
                  step: Tensor, lr: float, beta1: float, beta2: float, eps: float) -> None:
    size, width = rows.size(0), math.prod(param.shape[1:])
    if size and width:
        grid = (triton.cdiv(size, LAZY_ADAM_BLOCKS["BLOCK_R"]),
                triton.cdiv(width, LAZY_ADAM_BLOCKS["BLOCK_D"]))
        _lazy_adam_kernel[grid](param, moments, rows.contiguous(), count, grad.contiguous(),
                                step, _bits(lr), _bits(beta1), _bits(beta2), eps, size, width,
                                **LAZY_ADAM_BLOCKS)


@_lazy_adam_op.register_fake
def _(param, moments, rows, count, grad, step, lr, beta1, beta2, eps):
    return None


if HAS_TRITON:
    @triton.jit
    def _float64(bits):
        """The float64 with bit pattern ``bits`` (an integer argument from :func:`_bits`)."""
        return bits.to(tl.int64).to(tl.float64, bitcast=True)

    @triton.jit
    def _one_minus_power(beta, exponent):
        """``1 - beta ** exponent`` in float64 for an integer ``exponent >= 0`` (int64), by
        binary exponentiation."""
        power = beta * 0.0 + 1.0
        while exponent > 0:
            power = tl.where(exponent % 2 == 1, power * beta, power)
            beta = beta * beta
            exponent = exponent // 2
        return 1.0 - power

    # D (the row width) is a compile-time constant so that row offsets are known multiples
    # of it: aligned vector accesses (one compilation per table width).
    @triton.jit
    def _lazy_adam_kernel(param_ptr, moments_ptr, rows_ptr, count_ptr, grad_ptr, step_ptr,
                          lr_bits, beta1_bits, beta2_bits, eps, S, D: tl.constexpr,
                          BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr):
        """Program (i, j): columns j*BLOCK_D ... of buffer positions i*BLOCK_R ...; none
        when they all lie past ``count``."""
        count = tl.minimum(tl.load(count_ptr).to(tl.int64), S)
        first = tl.program_id(0).to(tl.int64) * BLOCK_R
        if first >= count:
            return
        offs_r = first + tl.arange(0, BLOCK_R)
        offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
        mask_r = offs_r < count
        mask = mask_r[:, None] & (offs_d < D)[None, :]
        rows = tl.load(rows_ptr + offs_r, mask=mask_r, other=0).to(tl.int64)

        # The scalars, from the exact float64 arguments, each rounded once to float32.
        lr = _float64(lr_bits)
        beta1 = _float64(beta1_bits)
        beta2 = _float64(beta2_bits)
        t = tl.load(step_ptr).to(tl.int64)
        step_size = (-lr / _one_minus_power(beta1, t)).to(tl.float32)
        bias2 = _one_minus_power(beta2, t).to(tl.float32)

        grad = tl.load(grad_ptr + offs_r[:, None] * D + offs_d[None, :], mask=mask,
                       other=0.0).to(tl.float32)
        m_ptrs = moments_ptr + rows[:, None] * 2 * D + offs_d[None, :]
        exp_avg = tl.load(m_ptrs, mask=mask, other=0.0)
        exp_avg_sq = tl.load(m_ptrs + D, mask=mask, other=0.0)
        exp_avg = exp_avg * beta1.to(tl.float32) + grad * (1.0 - beta1).to(tl.float32)
        exp_avg_sq = (exp_avg_sq * beta2.to(tl.float32)
                      + (1.0 - beta2).to(tl.float32) * grad * grad)
        tl.store(m_ptrs, exp_avg, mask=mask)
        tl.store(m_ptrs + D, exp_avg_sq, mask=mask)

        denom = tl.sqrt_rn(tl.div_rn(exp_avg_sq, bias2)) + eps
        w_ptrs = param_ptr + rows[:, None] * D + offs_d[None, :]
        w = tl.load(w_ptrs, mask=mask, other=0.0).to(tl.float32)
        w += tl.div_rn(step_size * exp_avg, denom)
        tl.store(w_ptrs, w.to(param_ptr.dtype.element_ty), mask=mask)
