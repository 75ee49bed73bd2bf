"""AdaMF: adaptive multi-modal fusion (Zhang et al., LREC-COLING 2024)."""
from typing import Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.nn import Linear

from mmkgc_pyg.errors import InvalidArgumentError
from mmkgc_pyg.kernels.adamf_fusion import adamf_fusion


class AdaMF(torch.nn.Module):
    r"""Fuses an entity's structural embedding with its modality features by adaptive
    per-entity attention:

    .. math::
        \mathbf{p}_e^m = \mathbf{W}_m \mathbf{x}_e^m + \mathbf{b}_m, \qquad
        \mathbf{p}_e^s = \mathbf{s}_e,

        u_e^m = \mathbf{w}^\top \tanh(\mathbf{p}_e^m), \qquad
        a_e^m = \frac{\exp(u_e^m)}{\sum_{m' \in \mathcal{M}_e} \exp(u_e^{m'})}, \qquad
        \mathbf{j}_e = \sum_{m \in \mathcal{M}_e} a_e^m \mathbf{p}_e^m,

    where :math:`\mathcal{M}_e` holds the structural modality and every modality that
    entity :math:`e` has. A missing modality gets weight exactly 0, so an entity with no
    extra modality falls back to its structural embedding.

    The two steps are separable: :meth:`project` stacks the projected modalities into
    ``[N, 1 + M, D]`` and :meth:`fuse` runs the fused attention (a Triton kernel on CUDA).

    Args:
        in_channels (Dict[str, int]): raw feature size of each extra modality, or ``-1``
            to infer it at the first call (PyG's lazy initialisation); the dict's order
            fixes the order of the weight columns after the structural one.
        out_channels (int): size :math:`D` of the structural and joint embeddings.
    """

    def __init__(self, in_channels: Dict[str, int], out_channels: int):
        super().__init__()
        if not in_channels:
            raise InvalidArgumentError("AdaMF: in_channels: expected at least one modality")
        self.in_channels = dict(in_channels)
        self.out_channels = out_channels
        self.projections = torch.nn.ModuleDict({
            name: Linear(size, out_channels) for name, size in self.in_channels.items()
        })
        self.attn = torch.nn.Parameter(torch.empty(out_channels))
        self.reset_parameters()

    @property
    def modality_names(self) -> List[str]:
        """Names of the weight columns: ``structure`` first, then the extra modalities."""
        return ["structure", *self.in_channels]

    def reset_parameters(self):
        for lin in self.projections.values():
            lin.reset_parameters()
        bound = self.out_channels ** -0.5  # as a bias-free Linear(D, 1)
        torch.nn.init.uniform_(self.attn, -bound, bound)

    def project(self, x_struct: Tensor, x_dict: Dict[str, Tensor]) -> Tensor:
        """Projects every modality to size D: ``[N, 1 + M, D]``."""
        missing = [name for name in self.in_channels if name not in x_dict]
        if missing:
            raise InvalidArgumentError(f"AdaMF: x_dict: expected the modalities "
                                       f"{list(self.in_channels)}, "
                                       f"got none for {missing}")
        projected = [self.projections[name](x_dict[name]) for name in self.in_channels]
        return torch.stack([x_struct, *projected], dim=1)

    def stack_masks(self, mask_dict: Optional[Dict[str, Tensor]], num_nodes: int,
                    device: torch.device) -> Tensor:
        """Availability ``[N, 1 + M]``: the structure is always present, and so is a
        modality that ``mask_dict`` does not mention."""
        ones = torch.ones(num_nodes, dtype=torch.bool, device=device)
        mask_dict = mask_dict or {}
        return torch.stack([ones, *(mask_dict[name].to(device, torch.bool)
                                    if name in mask_dict else ones
                                    for name in self.in_channels)], dim=1)

    def fuse(self, embs: Tensor, mask: Optional[Tensor] = None,
             return_attention_weights: bool = False) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """Attention over the modality axis of ``embs [N, 1 + M, D]``."""
        joint, weights = adamf_fusion(embs, self.attn, mask)
        return (joint, weights) if return_attention_weights else joint

    def forward(self, x_struct: Tensor, x_dict: Dict[str, Tensor],
                mask_dict: Optional[Dict[str, Tensor]] = None,
                return_attention_weights: bool = False) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        r"""
        Args:
            x_struct (torch.Tensor): structural embeddings ``[N, D]``.
            x_dict (Dict[str, torch.Tensor]): raw features ``[N, d_m]`` per modality.
            mask_dict (Dict[str, torch.Tensor], optional): availability ``[N]`` per
                modality (``True`` = present); all present when omitted.
            return_attention_weights (bool): also return the modality weights (PyG's
                convention for attention layers).

        Returns:
            The joint embeddings ``[N, D]``, and with ``return_attention_weights`` the
            modality weights ``[N, 1 + M]`` (columns in :attr:`modality_names` order; 0
            where a modality is missing).
        """
        embs = self.project(x_struct, x_dict)
        mask = (None if mask_dict is None
                else self.stack_masks(mask_dict, x_struct.size(0), x_struct.device))
        return self.fuse(embs, mask, return_attention_weights)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, "
                f"out_channels={self.out_channels})")
