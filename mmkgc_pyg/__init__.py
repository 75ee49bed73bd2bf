r"""mmkgc-pyg: fast multi-modal knowledge graph completion (AdaMF-MAT) on PyTorch
Geometric, with Triton kernels for the fused attention and all-entity ranking."""
from mmkgc_pyg.checkpoint import load_checkpoint, save_checkpoint
from mmkgc_pyg.training.runner import PipelineResult, pipeline

__version__ = "0.1.0"
__all__ = ["pipeline", "PipelineResult", "load_checkpoint", "save_checkpoint", "__version__"]
