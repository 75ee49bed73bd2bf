"""DistMult: a diagonal bilinear score (Yang et al., ICLR 2015)."""
import torch
from torch import Tensor

from mmkgc_pyg.nn.interactions.base import InnerProductInteraction


class DistMultInteraction(InnerProductInteraction):
    r"""DistMult:

    .. math::
        f(h, r, t) = \langle \mathbf{h}, \mathbf{r}, \mathbf{t} \rangle

    The relation is symmetric in head and tail, so both queries are :math:`e \circ r`.
    """

    def reset_relations(self, weight: Tensor) -> None:
        torch.nn.init.xavier_uniform_(weight)

    def tail_query(self, head: Tensor, rel: Tensor) -> Tensor:
        return head * rel

    def head_query(self, rel: Tensor, tail: Tensor) -> Tensor:
        return tail * rel
