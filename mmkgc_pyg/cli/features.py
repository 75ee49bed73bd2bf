"""``python -m mmkgc_pyg.features``: build modality feature files for a dataset folder.

``text`` embeds each entity's description (or readable name) with a sentence-transformers
model, ``images`` each entity's images with a vision model (mean-pooled). Both write
``<NAME>-<modality>.pth`` into the dataset folder, where training finds it, and the
presence mask beside it; the library functions are in :mod:`mmkgc_pyg.builders`.
What matched no entity and which images could not be read is reported on stderr, the
first few by name.
"""
import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from mmkgc_pyg.builders.descriptions import entity_texts, read_descriptions
from mmkgc_pyg.builders.image_features import (DEFAULT_IMAGE_MODEL, ImageEncoder,
                                               find_entity_images, image_features)
from mmkgc_pyg.builders.text_features import (DEFAULT_TEXT_MODEL, load_text_model,
                                              text_features)
from mmkgc_pyg.cli.common import positive_int, resolve_device, one_line_errors
from mmkgc_pyg.data.entity_names import EntityIndex, find_link_files
from mmkgc_pyg.data.labelled import load_dataset_folder
from mmkgc_pyg.data.openke import read_name_file
from mmkgc_pyg.errors import InputError
from mmkgc_pyg.io import atomic_torch_save, reader_failure

OUTPUT_SUFFIXES = (".pth", ".pt")
SHOWN = 5  # names listed of the keys that matched nothing, or of unreadable images


def _add_common(parser: argparse.ArgumentParser, modality: str, model: str, batch: int):
    parser.add_argument("--dataset", required=True, metavar="DIR",
                        help="dataset folder, OpenKE or labelled triples (entity names from "
                             "its entity2id.txt; link files ent_links / *_SameAsLink.txt in "
                             "it add aliases)")
    parser.add_argument("--model", default=model, metavar="NAME_OR_PATH",
                        help=f"a local model folder or a Hugging Face hub name (default "
                             f"{model})")
    parser.add_argument("--batch-size", type=positive_int, default=batch, metavar="N",
                        help=f"inputs per model call (default {batch})")
    parser.add_argument("--device", default="auto",
                        help="auto (default: cuda when available), cpu, cuda or cuda:N")
    parser.add_argument("--out", metavar="FILE",
                        help=f"the feature file [N, d] (default DIR/<NAME>-{modality}.pth, "
                             "NAME being the folder's name, so training finds it)")
    parser.add_argument("--mask-out", metavar="FILE",
                        help="the presence mask [N] bool, True = present, as --mask reads "
                             "it (default: the feature file's name with -mask before .pth)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files that exist (default: refuse)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mmkgc_pyg.features",
        description="Build modality feature files for a dataset folder. Entities without "
                    "the modality get a zero row and False in the mask.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{text,images}")
    text = commands.add_parser(
        "text", help="sentence embeddings of descriptions, else of names",
        description="Embed each entity's description, else its readable name (the URI "
                    "tail, percent-decoded, _ as space; identifiers such as Wikidata ids "
                    "are not names), with a sentence-transformers model. Needs the [text] "
                    "extra.")
    _add_common(text, "textual", DEFAULT_TEXT_MODEL, 64)
    text.add_argument("--descriptions", metavar="FILE",
                      help="KEY<TAB>TEXT lines; KEY is an entity id when every key of the "
                           "file is an integer, else an entity name (full, URI tail, or "
                           "an alias from a link file)")
    images = commands.add_parser(
        "images", help="image embeddings, mean-pooled per entity",
        description="Embed each entity's images with a vision model (transformers) and "
                    "average them. Needs the [vision] extra.")
    images.add_argument("--images", required=True, metavar="DIR",
                        help="IMAGES/<id or name>/*.jpg, or IMAGES/<id or name>.jpg and "
                             "IMAGES/<id or name>_<n>.jpg (ids when every entry is an "
                             "integer)")
    _add_common(images, "visual", DEFAULT_IMAGE_MODEL, 32)
    return parser


def _outputs(args, modality: str) -> Tuple[Path, Path]:
    # Checked before any model runs, so a refusal costs nothing.
    folder = Path(args.dataset)
    out = Path(args.out) if args.out else folder / f"{folder.resolve().name}-{modality}.pth"
    mask = Path(args.mask_out) if args.mask_out else out.with_name(f"{out.stem}-mask{out.suffix}")
    for flag, path in (("--out", out), ("--mask-out", mask)):
        if path.suffix not in OUTPUT_SUFFIXES:
            raise InputError(f"{flag} {path}: expected a .pth or .pt file (torch.save)")
        if path.exists() and not args.overwrite:
            raise InputError(f"{path}: exists; expected a new output file, or "
                             "--overwrite to replace it")
    if out.resolve() == mask.resolve():
        raise InputError(f"--mask-out {mask}: expected a file other than --out")
    return out, mask


def _counted(items: Sequence, what: str) -> str:
    """``3 lines named no entity: 'a', 'b', 'c'``, the first :data:`SHOWN` by name."""
    if not items:
        return f"0 {what}"
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return f"{len(items)} {what}: {', '.join(map(repr, items[:SHOWN]))}{more}"


def _entities(folder: str) -> Tuple[List[str], EntityIndex]:
    if not Path(folder).is_dir():
        raise InputError(f"--dataset {folder}: expected a dataset folder, got no such "
                         "directory")
    ids = Path(folder) / "entity2id.txt"
    # A folder of labelled triples gets its ids (written beside them) on first load.
    names = read_name_file(ids) if ids.exists() else load_dataset_folder(folder).entity_names
    return names, EntityIndex(names, find_link_files(folder))


def _load_model(load, args):
    try:
        return load(args.model, resolve_device(args.device))
    except InputError:  # a missing extra; an uncached hub name without the hub
        raise
    except Exception as e:  # noqa: BLE001 - hub, file and format errors all mean a bad --model
        raise InputError(f"--model {args.model}: expected a local model folder or a hub "
                         f"name that can be loaded, got {reader_failure(e)}") from None


def build_text(args) -> str:
    out, mask_out = _outputs(args, "textual")
    names, entities = _entities(args.dataset)
    descriptions = {}
    if args.descriptions:
        descriptions, unmatched = read_descriptions(args.descriptions, entities)
        print(f"{args.descriptions}: {len(descriptions)} entities described; "
              f"{_counted(unmatched, 'lines named no entity')}", file=sys.stderr)
    texts = entity_texts(names, descriptions)
    if all(t is None for t in texts):
        raise InputError(f"{args.dataset}: expected an entity with a description or a "
                         "readable name, got none (names such as Wikidata ids need "
                         "--descriptions)")
    model = _load_model(load_text_model, args)
    x, present = text_features(texts, model, args.batch_size)
    atomic_torch_save(x, out)
    atomic_torch_save(present, mask_out)
    return (f"wrote {out} {list(x.shape)} and {mask_out}: {int(present.sum())} of "
            f"{len(names)} entities have text ({len(descriptions)} descriptions, "
            f"{int(present.sum()) - len(descriptions)} names)")


def build_images(args) -> str:
    out, mask_out = _outputs(args, "visual")
    names, entities = _entities(args.dataset)
    images, unmatched = find_entity_images(args.images, entities)
    found = sum(map(len, images))
    print(f"{args.images}: {found} images of {sum(map(bool, images))} entities; "
          f"{_counted(unmatched, 'entries named no entity')}", file=sys.stderr)
    if found == 0:
        raise InputError(f"--images {args.images}: expected image files of the "
                         "dataset's entities, got none")
    encoder = _load_model(ImageEncoder, args)
    x, present, unreadable = image_features(images, encoder, args.batch_size)
    if unreadable:
        paths = [str(p.relative_to(args.images)) for p in unreadable]
        print(f"{args.images}: skipped {_counted(paths, 'unreadable images')}",
              file=sys.stderr)
    atomic_torch_save(x, out)
    atomic_torch_save(present, mask_out)
    return (f"wrote {out} {list(x.shape)} and {mask_out}: {int(present.sum())} of "
            f"{len(names)} entities have images")


@one_line_errors
def main(argv: Optional[List[str]] = None):
    args = build_parser().parse_args(argv)
    print({"text": build_text, "images": build_images}[args.command](args))


if __name__ == "__main__":
    main()
