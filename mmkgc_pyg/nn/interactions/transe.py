"""TransE: relations as translations (Bordes et al., NeurIPS 2013)."""
import math

import torch
from torch import Tensor

from mmkgc_pyg.nn.interactions.base import Interaction


class TransEInteraction(Interaction):
    r"""TransE with the L1 distance:

    .. math::
        f(h, r, t) = \gamma - \| \mathbf{h} + \mathbf{r} - \mathbf{t} \|_1
    """

    def _bound(self) -> float:
        return 6.0 / math.sqrt(self.hidden_channels)

    def reset_relations(self, weight: Tensor) -> None:
        torch.nn.init.uniform_(weight, -self._bound(), self._bound())

    def reset_entities(self, weight: Tensor) -> None:
        torch.nn.init.uniform_(weight, -self._bound(), self._bound())

    def tail_query(self, head: Tensor, rel: Tensor) -> Tensor:
        return head + rel

    def head_query(self, rel: Tensor, tail: Tensor) -> Tensor:
        return tail - rel

    def match(self, query: Tensor, entity: Tensor) -> Tensor:
        return self.margin - (query - entity).abs().sum(dim=-1)

    def score_all(self, query: Tensor, entities: Tensor) -> Tensor:
        return self.margin - torch.cdist(query, entities, p=1)
