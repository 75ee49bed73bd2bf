r"""Image features: each entity's images embedded by a vision model and mean-pooled.

Needs the ``vision`` extra (``pip install "mmkgc-pyg[vision]"``: transformers and
Pillow, no torchvision). The model is any Hugging Face vision model with an image
processor, from a local folder or a hub name (ViT, DINOv2, BEiT, ConvNeXt, ResNet, or
the image tower of CLIP/SigLIP); an image's embedding is the model's pooled output
(``get_image_features`` for CLIP-like models, else ``pooler_output``, else the mean of
the last hidden states).

**Layout** of an images folder (:func:`find_entity_images`). Each entry of ``IMAGES``
is either a folder holding any number of images of one entity (subfolders included) or
a single image file. An entry's key is a folder's name, or a file's stem, where a final
``_<n>`` numbers the images of one entity: ``17_1.jpg`` is image 1 of entity 17 and
``Paris_2.png`` image 2 of Paris, unless the whole stem names an entity
(``Apollo_11.jpg`` is an image of Apollo_11 when that is an entity). The keys are read *per folder*
(:func:`~mmkgc_pyg.data.entity_names.match_keys`): when every entry's key is a
non-negative integer they are entity ids, so ``IMAGES/17/*.jpg``, ``IMAGES/17.png`` and
``IMAGES/17_0.jpg``, ``IMAGES/17_1.jpg`` all belong to entity 17 (an id out of range is
an error); otherwise every key is an entity name in any form that
:class:`~mmkgc_pyg.data.entity_names.EntityIndex` matches (``IMAGES/Andy_Griffith/``,
``IMAGES/Andy_Griffith_0.jpg``, or a Freebase mid ``IMAGES/m.01m4kpp/`` given a link
file), and the entries naming no entity are returned. Images are files ending in one of
:data:`IMAGE_SUFFIXES` (any case); other files and names starting with ``.`` are
ignored.

An entity's feature is the mean of the embeddings of its readable images; an image that
cannot be decoded is skipped and returned, and an entity without a readable image is
missing.
"""
import re
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mmkgc_pyg.builders.hub import load_from_folder_or_hub
from mmkgc_pyg.data.entity_names import EntityIndex, match_keys
from mmkgc_pyg.errors import InputError, InvalidArgumentError
from mmkgc_pyg.extras import require

DEFAULT_IMAGE_MODEL = "facebook/dinov2-small"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif",
                            ".tiff"})
_NUMBERED = re.compile(r"(.+)_[0-9]+")


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _key_spellings(entry: Path) -> Tuple[str, ...]:
    # The whole stem first: an entity may be named like a numbered image (Apollo_11).
    if entry.is_dir():
        return (entry.name,)
    numbered = _NUMBERED.fullmatch(entry.stem)
    return (entry.stem, numbered[1]) if numbered else (entry.stem,)


def find_entity_images(folder, entities: EntityIndex) -> Tuple[List[List[Path]], List[str]]:
    r"""The image files of each entity in an images folder (layout in the module
    docstring).

    Returns:
        ``(images, unmatched)``: for each entity id its image paths (sorted), and the
        names of the folder's entries that name no entity (sorted).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: expected a folder of entity images, got no such "
                         "directory")
    entries = [e for e in sorted(folder.iterdir())
               if not e.name.startswith(".") and (e.is_dir() or _is_image(e))]
    ids = match_keys([_key_spellings(e) for e in entries], entities,
                     lambda i: str(entries[i]))
    images: List[List[Path]] = [[] for _ in range(entities.num_entities)]
    unmatched = []
    for entry, entity in zip(entries, ids):
        if entity is None:
            unmatched.append(entry.name)
            continue
        images[entity] += ([p for p in sorted(entry.rglob("*"))
                            if _is_image(p) and not p.name.startswith(".")]
                           if entry.is_dir() else [entry])
    return images, unmatched


class ImageEncoder:
    r"""A Hugging Face vision model and its image processor: a list of PIL images ->
    embeddings ``[B, d]`` (float32, CPU).

    Args:
        model (str): a local model folder or a hub name (without the hub, from the local
            hub cache only: :func:`~mmkgc_pyg.builders.hub.load_from_folder_or_hub`).
        device (torch.device, optional): where the model runs (default: CPU).
    """

    def __init__(self, model: str = DEFAULT_IMAGE_MODEL, device=None):
        transformers = require("transformers", "vision", "building image features")
        require("PIL.Image", "vision", "building image features")
        self.device = torch.device(device or "cpu")
        self.processor, network = load_from_folder_or_hub(model, lambda local: (
            transformers.AutoImageProcessor.from_pretrained(model, local_files_only=local),
            transformers.AutoModel.from_pretrained(model, local_files_only=local)))
        self.model = network.eval().to(self.device)

    @torch.no_grad()
    def __call__(self, images) -> Tensor:
        pixels = self.processor(images=list(images), return_tensors="pt")["pixel_values"]
        pixels = pixels.to(self.device)
        if hasattr(self.model, "get_image_features"):  # CLIP-like: the projected image
            out = self.model.get_image_features(pixel_values=pixels)
        else:
            out = self.model(pixel_values=pixels)
        if not isinstance(out, Tensor):  # a ModelOutput (transformers >= 5 for CLIP too)
            pooled = getattr(out, "pooler_output", None)
            out = pooled if pooled is not None else out.last_hidden_state.mean(dim=1)
        return out.flatten(1).float().cpu()  # CNN poolers give [B, C, 1, 1]


def read_image(path):
    r"""The image at ``path`` as an RGB PIL image, or ``None`` when it cannot be read."""
    image_module = require("PIL.Image", "vision", "reading images")
    try:
        with image_module.open(path) as image:
            return image.convert("RGB")
    except Exception:  # noqa: BLE001 - Pillow's decoders raise many types on bad files
        return None


def image_features(images: Sequence[Sequence[Path]], encoder: Callable[[list], Tensor],
                   batch_size: int = 32,
                   progress: bool = True) -> Tuple[Tensor, Tensor, List[Path]]:
    r"""Features of entities from their images, mean-pooled per entity.

    Args:
        images (Sequence[Sequence[Path]]): each entity's image files
            (:func:`find_entity_images`).
        encoder (Callable): PIL images -> embeddings ``[B, d]`` (an :class:`ImageEncoder`).
        batch_size (int): images per call of ``encoder``.

    Returns:
        ``(x, present, unreadable)``: float32 ``[N, d]``, each row the mean embedding of
        the entity's readable images and zeros where it has none; bool ``[N]``, ``True``
        where it has one; and the image files skipped as unreadable.
    """
    if batch_size < 1:
        raise InvalidArgumentError(f"image_features: expected batch_size >= 1, got {batch_size}")
    jobs = [(entity, path) for entity, paths in enumerate(images) for path in paths]
    if not jobs:
        raise InvalidArgumentError("image_features: expected at least one image file")
    sums: Optional[Tensor] = None
    counts = torch.zeros(len(images))
    unreadable: List[Path] = []
    batch_ids: List[int] = []
    batch: list = []
    with tqdm(total=len(jobs), desc="images", unit="image", disable=not progress) as bar:
        for i, (entity, path) in enumerate(jobs):
            image = read_image(path)
            if image is None:
                unreadable.append(path)
            else:
                batch_ids.append(entity)
                batch.append(image)
            if batch and (len(batch) == batch_size or i == len(jobs) - 1):
                emb = encoder(batch)
                if sums is None:
                    sums = emb.new_zeros(len(images), emb.size(1), dtype=torch.float64)
                ids = torch.tensor(batch_ids)
                sums.index_add_(0, ids, emb.double())
                counts.index_add_(0, ids, torch.ones(len(ids)))
                batch_ids, batch = [], []
            bar.update()
    if sums is None:
        raise InputError(f"{unreadable[0]}: expected at least one readable image, got "
                         f"{len(unreadable)} unreadable ones, this one among them")
    present = counts > 0
    x = (sums / counts.clamp(min=1).double().unsqueeze(1)).float()
    return x, present, unreadable
