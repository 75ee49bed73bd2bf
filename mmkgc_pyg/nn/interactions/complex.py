"""ComplEx: a complex bilinear score (Trouillon et al., ICML 2016)."""
import torch
from torch import Tensor

from mmkgc_pyg.nn.interactions.base import InnerProductInteraction


def complex_mul(a: Tensor, b: Tensor) -> Tensor:
    """Product of complex vectors stored as (real half | imaginary half)."""
    a_re, a_im = a.chunk(2, dim=-1)
    b_re, b_im = b.chunk(2, dim=-1)
    return torch.cat([a_re * b_re - a_im * b_im, a_re * b_im + a_im * b_re], dim=-1)


def complex_conj(a: Tensor) -> Tensor:
    re, im = a.chunk(2, dim=-1)
    return torch.cat([re, -im], dim=-1)


class ComplExInteraction(InnerProductInteraction):
    r"""ComplEx on :math:`k` complex dimensions (``hidden_channels``):

    .. math::
        f(h, r, t) = \mathrm{Re}\Big(\sum_i h_i r_i \bar{t}_i\Big)
                   = \langle h \circ r, t \rangle_{\mathbb{R}}
                   = \langle \bar{r} \circ t, h \rangle_{\mathbb{R}}

    where :math:`\langle \cdot, \cdot \rangle_{\mathbb{R}}` is the real dot product of
    the (real | imaginary) vectors.
    """
    complex_valued = True

    def reset_relations(self, weight: Tensor) -> None:
        torch.nn.init.xavier_uniform_(weight)

    def tail_query(self, head: Tensor, rel: Tensor) -> Tensor:
        return complex_mul(head, rel)

    def head_query(self, rel: Tensor, tail: Tensor) -> Tensor:
        return complex_mul(complex_conj(rel), tail)
