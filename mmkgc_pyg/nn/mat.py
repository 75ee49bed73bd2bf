"""MAT: modality adversarial training (Zhang et al., LREC-COLING 2024)."""
from typing import List, Optional

import torch
from torch import Tensor

from mmkgc_pyg.errors import InvalidArgumentError
from mmkgc_pyg.nn.adamf import AdaMF
from mmkgc_pyg.nn.generator import ModalityGenerator


class MAT(torch.nn.Module):
    r"""The generators of modality adversarial training: one
    :class:`~mmkgc_pyg.nn.ModalityGenerator` per extra modality of a model. The
    adversarial joint embedding of entity :math:`e` fuses its structural embedding with
    generated modalities, all present:

    .. math::
        \tilde{\mathbf{j}}_e = \mathrm{AdaMF}\big(\mathbf{s}_e,
            G_{m_1}(\mathbf{s}_e), \ldots, G_{m_M}(\mathbf{s}_e)\big)

    The generators are not part of the trained model: they exist only during training
    (see :class:`~mmkgc_pyg.training.Trainer`), with their own optimiser.

    Args:
        modalities (List[str]): the model's extra modalities, in its order.
        entity_channels (int): size :math:`D` of the model's real entity vectors
            (``model.interaction.entity_channels``: twice PyG's ``hidden_channels`` for RotatE
            and ComplEx, whose embeddings are complex).
        noise_channels (int): noise size (64 in the paper).
        generator_channels (int): hidden size of each generator (512 in the paper).
    """

    def __init__(self, modalities: List[str], entity_channels: int,
                 noise_channels: int = 64, generator_channels: int = 512):
        super().__init__()
        self.generators = torch.nn.ModuleDict({
            name: ModalityGenerator(entity_channels, noise_channels, generator_channels)
            for name in modalities
        })

    def reset_parameters(self):
        for generator in self.generators.values():
            generator.reset_parameters()

    def draw_noise(self, num_entities: int, generator: torch.Generator) -> None:
        """Draws (and drops) the noise of one forward pass over ``num_entities`` entities:
        the random stream then stands where a forward pass would have left it."""
        for g in self.generators.values():
            g.draw_noise(num_entities, generator)

    def forward(self, struct: Tensor, adamf: AdaMF, generator: Optional[torch.Generator] = None,
                grad_to: str = "model") -> Tensor:
        """Adversarial joint embeddings ``[n, D]`` of entities with structural embeddings
        ``struct [n, D]``, fused by the model's ``adamf``.

        ``grad_to`` says where gradients go: ``"model"`` (the generators run without a
        graph; only the fusion and the structural embedding get gradients),
        ``"generators"`` (the structural embedding is detached; the caller freezes the
        rest of the model) or ``"both"`` (the reference's model step: the gradient also
        reaches the structural embedding through the generators; a caller that does not
        want the generators' own gradients freezes them)."""
        if grad_to not in ("model", "generators", "both"):
            raise InvalidArgumentError(f"grad_to={grad_to!r}: expected 'model', 'generators' or "
                                       f"'both'")
        if grad_to == "generators":
            struct = struct.detach()
        source = struct.detach() if grad_to == "model" else struct
        with torch.set_grad_enabled(grad_to != "model" and torch.is_grad_enabled()):
            fakes = [g(source, generator) for g in self.generators.values()]
        return adamf.fuse(torch.stack([struct, *fakes], dim=1))
