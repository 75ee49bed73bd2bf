r"""Adam that updates only the rows a sparse gradient names ("lazy" Adam).

For a table whose step touched rows :math:`I` with gradients :math:`g_i`:

.. math::
    m_i \leftarrow \beta_1 m_i + (1 - \beta_1) g_i, \quad
    v_i \leftarrow \beta_2 v_i + (1 - \beta_2) g_i^2, \quad
    w_i \leftarrow w_i - \frac{\eta}{1 - \beta_1^t}
        \frac{m_i}{\sqrt{v_i / (1 - \beta_2^t)} + \epsilon}
    \qquad (i \in I),

with :math:`t` the table's step count: exactly :class:`torch.optim.Adam` on rows that
every step touches, and untouched rows (and their moments) left as they are, so a step
costs what the batch touches, not what the table holds. (:class:`torch.optim.SparseAdam`
scales :math:`\epsilon` differently, so it does not match Adam on such rows.)
"""
from typing import Iterable

import torch
from torch import Tensor

from mmkgc_pyg.errors import InvalidArgumentError


class LazyAdam(torch.optim.Optimizer):
    r"""Adam over the rows of sparse gradients (module docstring).

    Args:
        params: tables whose gradients are sparse (e.g. from ``Embedding(sparse=True)``).
        lr, betas, eps: as in :class:`torch.optim.Adam`.
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas=(0.9, 0.999),
                 eps: float = 1e-8):
        if not 0.0 < lr or not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0 or eps < 0:
            raise InvalidArgumentError(f"LazyAdam: expected lr > 0, betas in [0, 1), eps >= 0, got "
                             f"lr={lr}, betas={betas}, eps={eps}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                if not param.grad.is_sparse:
                    raise InvalidArgumentError(
                        "LazyAdam: expected sparse gradients (a sparse embedding lookup); use "
                        "torch.optim.Adam for dense ones")
                grad = param.grad.coalesce()
                rows, values = grad.indices()[0], grad.values()
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    # Both moments of a row side by side: one gather and one scatter each
                    # step (on a large table the random row accesses dominate).
                    state["moments"] = param.new_zeros(param.size(0), 2, *param.shape[1:])
                state["step"] += 1
                # index_select / index_copy_: the rows are distinct (coalesced), and these
                # are the fast paths for row gathers and scatters.
                moments = state["moments"].index_select(0, rows)
                exp_avg, exp_avg_sq = moments.unbind(1)
                exp_avg.mul_(beta1).add_(values, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(values, values, value=1 - beta2)
                state["moments"].index_copy_(0, rows, moments)
                bias1 = 1 - beta1 ** state["step"]
                bias2 = 1 - beta2 ** state["step"]
                denom = (exp_avg_sq / bias2).sqrt_().add_(group["eps"])
                param.index_copy_(0, rows, param.index_select(0, rows).addcdiv_(
                    exp_avg, denom, value=-group["lr"] / bias1))
        return loss
