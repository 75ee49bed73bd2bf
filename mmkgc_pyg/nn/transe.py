"""TransE: relations as translations (Bordes et al., NeurIPS 2013)."""
import math

import torch
from torch import Tensor

from mmkgc_pyg.nn.scorer import Scorer


class TransE(Scorer):
    r"""TransE with the L1 distance:

    .. math::
        f(h, r, t) = \gamma - \| \mathbf{h} + \mathbf{r} - \mathbf{t} \|_1
    """

    def __init__(self, num_relations: int, hidden_channels: int, margin: float = 12.0):
        super().__init__(num_relations, hidden_channels, margin)
        self.rel_emb = torch.nn.Embedding(num_relations, hidden_channels)
        self.reset_parameters()

    def reset_parameters(self):
        bound = 6.0 / math.sqrt(self.hidden_channels)
        torch.nn.init.uniform_(self.rel_emb.weight, -bound, bound)

    def init_entity_embeddings(self, weight: Tensor):
        bound = 6.0 / math.sqrt(self.hidden_channels)
        torch.nn.init.uniform_(weight, -bound, bound)

    def tail_query(self, head: Tensor, rel_type: Tensor) -> Tensor:
        return head + self.rel_emb(rel_type)

    def head_query(self, rel_type: Tensor, tail: Tensor) -> Tensor:
        return tail - self.rel_emb(rel_type)

    def match(self, query: Tensor, entity: Tensor) -> Tensor:
        return self.margin - (query - entity).abs().sum(dim=-1)

    def score_all(self, query: Tensor, entities: Tensor) -> Tensor:
        return self.margin - torch.cdist(query, entities, p=1)
