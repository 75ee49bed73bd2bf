"""DistMult: a diagonal bilinear score (Yang et al., ICLR 2015)."""
import torch
from torch import Tensor

from mmkgc_pyg.nn.scorer import Scorer


class DistMult(Scorer):
    r"""DistMult:

    .. math::
        f(h, r, t) = \langle \mathbf{h}, \mathbf{r}, \mathbf{t} \rangle

    The relation is symmetric in head and tail, so both queries are :math:`e \circ r`.
    """

    def __init__(self, num_relations: int, hidden_channels: int, margin: float = 12.0):
        super().__init__(num_relations, hidden_channels, margin)
        self.rel_emb = torch.nn.Embedding(num_relations, hidden_channels)
        self.reset_parameters()

    def reset_parameters(self):
        torch.nn.init.xavier_uniform_(self.rel_emb.weight)

    def tail_query(self, head: Tensor, rel_type: Tensor) -> Tensor:
        return head * self.rel_emb(rel_type)

    def head_query(self, rel_type: Tensor, tail: Tensor) -> Tensor:
        return tail * self.rel_emb(rel_type)

    def match(self, query: Tensor, entity: Tensor) -> Tensor:
        return (query * entity).sum(dim=-1)

    def score_all(self, query: Tensor, entities: Tensor) -> Tensor:
        return query @ entities.t()
