r"""Image features: each entity's images embedded by a vision model and mean-pooled.

Needs the ``vision`` extra (``pip install "mmkgc-pyg[vision]"``: transformers and
Pillow, no torchvision). The model is any Hugging Face vision model with an image
processor, from a local folder or a hub name (ViT, DINOv2, BEiT, ConvNeXt, ResNet, or
the image tower of CLIP/SigLIP); an image's embedding is the model's pooled output
(``get_image_features`` for CLIP-like models, else ``pooler_output``, else the mean of
the last hidden states).

**Layout** of an images folder (:func:`find_entity_images`). Each entry of ``IMAGES``
is either a folder holding any number of images of one entity (subfolders included) or
a single image file. Entries are read *per folder*: when every entry's name (a folder's
name; a file's name up to its first ``_`` or its extension) is a non-negative integer,
they are entity ids, so ``IMAGES/17/*.jpg``, ``IMAGES/17.png`` and ``IMAGES/17_0.jpg``,
``IMAGES/17_1.jpg`` all belong to entity 17 (an id out of range is an error);
otherwise every entry is an entity name in any form that
:class:`~mmkgc_pyg.data.entity_names.EntityIndex` matches (``IMAGES/Andy_Griffith/``,
``IMAGES/Andy_Griffith.jpg``, or a Freebase mid ``IMAGES/m.01m4kpp/`` given a link
file), a file's whole stem being the name, and entries naming no entity are counted.
Images are files ending in one of :data:`IMAGE_SUFFIXES` (any case); other files and
names starting with ``.`` are ignored.

An entity's feature is the mean of the embeddings of its readable images; an image that
cannot be decoded is skipped and counted, and an entity without a readable image is
missing.
"""
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mmkgc_pyg.data.entity_names import EntityIndex
from mmkgc_pyg.errors import InputError, InvalidArgumentError
from mmkgc_pyg.extras import require

DEFAULT_IMAGE_MODEL = "facebook/dinov2-small"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif",
                            ".tiff"})


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _id_part(entry: Path) -> str:
    return entry.name if entry.is_dir() else entry.stem.partition("_")[0]


def find_entity_images(folder, entities: EntityIndex) -> Tuple[List[List[Path]], int]:
    r"""The image files of each entity in an images folder (layout in the module
    docstring).

    Returns:
        ``(images, unmatched)``: for each entity id its image paths (sorted), and the
        number of folder entries that name no entity.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: expected a folder of entity images, got no such "
                         "directory")
    entries = [e for e in sorted(folder.iterdir())
               if not e.name.startswith(".") and (e.is_dir() or _is_image(e))]
    by_id = all(_id_part(e).isascii() and _id_part(e).isdigit() for e in entries)
    images: List[List[Path]] = [[] for _ in range(entities.num_entities)]
    unmatched = 0
    for entry in entries:
        if by_id:
            entity = int(_id_part(entry))
            if entity >= entities.num_entities:
                raise InputError(f"{entry}: expected an entity id in "
                                 f"[0, {entities.num_entities}), got {entity}")
        else:
            entity = entities.lookup(entry.name if entry.is_dir() else entry.stem)
            if entity is None:
                unmatched += 1
                continue
        images[entity] += ([p for p in sorted(entry.rglob("*"))
                            if _is_image(p) and not p.name.startswith(".")]
                           if entry.is_dir() else [entry])
    return images, unmatched


class ImageEncoder:
    r"""A Hugging Face vision model and its image processor: a list of PIL images ->
    embeddings ``[B, d]`` (float32, CPU).

    Args:
        model (str): a local model folder or a hub name.
        device (torch.device, optional): where the model runs (default: CPU).
    """

    def __init__(self, model: str = DEFAULT_IMAGE_MODEL, device=None):
        transformers = require("transformers", "vision", "building image features")
        require("PIL.Image", "vision", "building image features")
        self.device = torch.device(device or "cpu")
        self.processor = transformers.AutoImageProcessor.from_pretrained(model)
        self.model = transformers.AutoModel.from_pretrained(model).eval().to(self.device)

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
                   batch_size: int = 32, progress: bool = True) -> Tuple[Tensor, Tensor, int]:
    r"""Features of entities from their images, mean-pooled per entity.

    Args:
        images (Sequence[Sequence[Path]]): each entity's image files
            (:func:`find_entity_images`).
        encoder (Callable): PIL images -> embeddings ``[B, d]`` (an :class:`ImageEncoder`).
        batch_size (int): images per call of ``encoder``.

    Returns:
        ``(x, present, unreadable)``: float32 ``[N, d]``, each row the mean embedding of
        the entity's readable images and zeros where it has none; bool ``[N]``, ``True``
        where it has one; and the number of images skipped as unreadable.
    """
    if batch_size < 1:
        raise InvalidArgumentError(f"image_features: expected batch_size >= 1, got {batch_size}")
    jobs = [(entity, path) for entity, paths in enumerate(images) for path in paths]
    if not jobs:
        raise InvalidArgumentError("image_features: expected at least one image file")
    sums: Optional[Tensor] = None
    counts = torch.zeros(len(images))
    unreadable, first_unreadable = 0, None
    batch_ids: List[int] = []
    batch: list = []
    with tqdm(total=len(jobs), desc="images", unit="image", disable=not progress) as bar:
        for i, (entity, path) in enumerate(jobs):
            image = read_image(path)
            if image is None:
                unreadable += 1
                first_unreadable = first_unreadable or path
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
        raise InputError(f"{first_unreadable}: expected at least one readable image, "
                         f"got {unreadable} unreadable ones, this one among them")
    present = counts > 0
    x = (sums / counts.clamp(min=1).double().unsqueeze(1)).float()
    return x, present, unreadable
