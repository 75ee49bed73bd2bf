r"""Neural modules: the AdaMF fusion layer, the interactions (score functions), MAT's
generators, the loss and the full multi-modal KGC model."""
from mmkgc_pyg.nn.adamf import AdaMF
from mmkgc_pyg.nn.interactions import (INTERACTIONS, ComplExInteraction, DistMultInteraction,
                                       Interaction, RotatEInteraction, TransEInteraction)
from mmkgc_pyg.nn.generator import ModalityGenerator
from mmkgc_pyg.nn.mat import MAT
from mmkgc_pyg.nn.loss import self_adversarial_sigmoid_loss
from mmkgc_pyg.nn.model import MMKGCModel

__all__ = ["AdaMF", "Interaction", "RotatEInteraction", "TransEInteraction",
           "DistMultInteraction", "ComplExInteraction", "INTERACTIONS", "ModalityGenerator",
           "MAT", "MMKGCModel", "self_adversarial_sigmoid_loss"]
