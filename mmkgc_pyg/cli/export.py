"""``python -m mmkgc_pyg.export``: a trained model's embeddings as arrays for vector search
(FAISS, a vector database), with the entity and relation names in row order and a JSON
manifest (:func:`~mmkgc_pyg.nn.prediction.export_embeddings`)."""
import argparse
from pathlib import Path
from typing import List, Optional

from mmkgc_pyg.checkpoint import load_checkpoint
from mmkgc_pyg.cli.common import one_line_errors, resolve_device
from mmkgc_pyg.errors import InputError, NonFiniteModelError
from mmkgc_pyg.nn.prediction import EXPORT_FORMATS, EXPORT_MANIFEST, export_embeddings
from mmkgc_pyg.run_folder import writable_folder


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mmkgc_pyg.export",
        description="Write a trained model's joint (fused) and structural entity embeddings "
                    "and its relation embeddings as .npy or .pt arrays, entities.txt and "
                    "relations.txt (one name per line, in row order) and manifest.json.")
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="model.pt written by mmkgc_pyg.train")
    parser.add_argument("--out", required=True, metavar="DIR", help="the export folder")
    parser.add_argument("--format", choices=list(EXPORT_FORMATS), default="npy",
                        help="npy (numpy.load, the default) or pt (torch.load)")
    parser.add_argument("--device", default="auto",
                        help="where the embeddings are fused: auto (default: cuda when "
                             "available), cpu, cuda or cuda:N")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an export already in DIR")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


@one_line_errors
def main(argv: Optional[List[str]] = None):
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    writable_folder(out, "--out")
    model = load_checkpoint(args.checkpoint).to(resolve_device(args.device))
    try:
        manifest = export_embeddings(model, out, args.format, overwrite=args.overwrite,
                                     progress=not args.quiet)
    except NonFiniteModelError as exc:
        raise InputError(f"{args.checkpoint}: {exc}") from None
    width = max(len(entry["file"]) for entry in manifest["files"].values())
    for entry in manifest["files"].values():
        rows = f"  rows: {entry['rows']}" if entry["rows"] else ""
        print(f"{entry['file']:<{width}}  {'x'.join(map(str, entry['shape']))} "
              f"{entry['dtype']}{rows}")
    print(f"wrote {out / EXPORT_MANIFEST}")
    return manifest


if __name__ == "__main__":
    main()
