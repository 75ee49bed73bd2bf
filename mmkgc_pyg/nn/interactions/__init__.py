r"""Triple score functions ("interactions"): how entity and relation rows score a triple.
They own no parameters; :class:`~mmkgc_pyg.nn.MMKGCModel` owns the tables."""
from mmkgc_pyg.nn.interactions.base import Interaction
from mmkgc_pyg.nn.interactions.complex import ComplExInteraction
from mmkgc_pyg.nn.interactions.distmult import DistMultInteraction
from mmkgc_pyg.nn.interactions.rotate import RotatEInteraction
from mmkgc_pyg.nn.interactions.transe import TransEInteraction

#: The ``interaction=`` names of :class:`~mmkgc_pyg.nn.MMKGCModel`.
INTERACTIONS = {"rotate": RotatEInteraction, "transe": TransEInteraction,
                "distmult": DistMultInteraction, "complex": ComplExInteraction}

__all__ = ["Interaction", "RotatEInteraction", "TransEInteraction", "DistMultInteraction",
           "ComplExInteraction", "INTERACTIONS"]
