r"""Adam that updates only the rows a step touched ("lazy" Adam), without a host
synchronisation.

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

The rows come as a buffer of static size (the first ``count`` distinct, the rest padding)
with their dense gradients, and the step count lives on the device: a step is a fixed
sequence of kernels (:func:`~mmkgc_pyg.kernels.lazy_adam.lazy_adam_step_`, one per table),
so it can be captured in a CUDA graph. Moments are kept in float32 whatever the table's
dtype.
"""
from typing import Dict

import torch
from torch import Tensor

from mmkgc_pyg.errors import InvalidArgumentError
from mmkgc_pyg.kernels.lazy_adam import lazy_adam_step_


class LazyAdam:
    r"""Adam over the touched rows of named tables (module docstring).

    Args:
        tables (Dict[str, Tensor]): the tables (parameters updated in place, outside
            autograd), by name.
        lr, betas, eps: as in :class:`torch.optim.Adam`.
    """

    def __init__(self, tables: Dict[str, Tensor], lr: float = 1e-3, betas=(0.9, 0.999),
                 eps: float = 1e-8):
        if not 0.0 < lr or not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0 or eps < 0:
            raise InvalidArgumentError(f"LazyAdam: expected lr > 0, betas in [0, 1), eps >= 0, "
                                       f"got lr={lr}, betas={betas}, eps={eps}")
        self.tables = dict(tables)
        self.lr, self.betas, self.eps = lr, betas, eps
        # Both moments of a row side by side: one gather and one scatter of them a step.
        self.state = {name: {"step": torch.zeros((), device=table.device),
                             "moments": torch.zeros(table.size(0), 2, *table.shape[1:],
                                                    device=table.device)}
                      for name, table in self.tables.items()}

    @torch.no_grad()
    def step(self, rows: Tensor, count: Tensor, grads: Dict[str, Tensor]) -> None:
        """Updates rows ``rows[:count]`` of each table named in ``grads`` with its
        gradient rows ``[len(rows), ...]`` (rows past ``count`` are padding)."""
        for name, grad in grads.items():
            state = self.state[name]
            state["step"] += 1
            lazy_adam_step_(self.tables[name], state["moments"], rows, count, grad,
                            state["step"], self.lr, *self.betas, self.eps)

    def state_dict(self) -> Dict:
        return {name: {key: value.clone() for key, value in state.items()}
                for name, state in self.state.items()}

    def load_state_dict(self, state: Dict) -> None:
        if set(state) != set(self.state):
            raise InvalidArgumentError(f"LazyAdam: expected the state of tables "
                                       f"{sorted(self.state)}, got {sorted(state)}")
        for name, values in state.items():
            for key, value in values.items():
                self.state[name][key].copy_(value)
