r"""Neural modules: the AdaMF fusion layer, the score functions, MAT's generator and
the full multi-modal KGC model."""
from mmkgc_pyg.nn.adamf import AdaMF
from mmkgc_pyg.nn.scorer import Scorer
from mmkgc_pyg.nn.rotate import RotatE
from mmkgc_pyg.nn.transe import TransE
from mmkgc_pyg.nn.distmult import DistMult
from mmkgc_pyg.nn.complex import ComplEx
from mmkgc_pyg.nn.generator import ModalityGenerator
from mmkgc_pyg.nn.mat import MAT
from mmkgc_pyg.nn.loss import self_adversarial_sigmoid_loss
from mmkgc_pyg.nn.model import SCORERS, MMKGCModel

__all__ = ["AdaMF", "Scorer", "RotatE", "TransE", "DistMult", "ComplEx",
           "ModalityGenerator", "MAT", "MMKGCModel", "SCORERS",
           "self_adversarial_sigmoid_loss"]
