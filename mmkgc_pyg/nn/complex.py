"""ComplEx: a complex bilinear score (Trouillon et al., ICML 2016)."""
import torch
from torch import Tensor

from mmkgc_pyg.nn.scorer import Scorer


def complex_mul(a: Tensor, b: Tensor) -> Tensor:
    """Product of complex vectors stored as (real half | imaginary half)."""
    a_re, a_im = a.chunk(2, dim=-1)
    b_re, b_im = b.chunk(2, dim=-1)
    return torch.cat([a_re * b_re - a_im * b_im, a_re * b_im + a_im * b_re], dim=-1)


def complex_conj(a: Tensor) -> Tensor:
    re, im = a.chunk(2, dim=-1)
    return torch.cat([re, -im], dim=-1)


class ComplEx(Scorer):
    r"""ComplEx on :math:`k = D / 2` complex dimensions:

    .. math::
        f(h, r, t) = \mathrm{Re}\Big(\sum_i h_i r_i \bar{t}_i\Big)
                   = \langle h \circ r, t \rangle_{\mathbb{R}}
                   = \langle \bar{r} \circ t, h \rangle_{\mathbb{R}}

    where :math:`\langle \cdot, \cdot \rangle_{\mathbb{R}}` is the real dot product of
    the (real | imaginary) vectors.
    """

    def __init__(self, num_relations: int, hidden_channels: int, margin: float = 12.0):
        if hidden_channels % 2:
            raise ValueError(f"ComplEx needs an even hidden_channels, got {hidden_channels}")
        super().__init__(num_relations, hidden_channels, margin)
        self.rel_emb = torch.nn.Embedding(num_relations, hidden_channels)
        self.reset_parameters()

    def reset_parameters(self):
        torch.nn.init.xavier_uniform_(self.rel_emb.weight)

    def tail_query(self, head: Tensor, rel_type: Tensor) -> Tensor:
        return complex_mul(head, self.rel_emb(rel_type))

    def head_query(self, rel_type: Tensor, tail: Tensor) -> Tensor:
        return complex_mul(complex_conj(self.rel_emb(rel_type)), tail)

    def match(self, query: Tensor, entity: Tensor) -> Tensor:
        return (query * entity).sum(dim=-1)

    def score_all(self, query: Tensor, entities: Tensor) -> Tensor:
        return query @ entities.t()
