"""Benchmark setup: ``workloads.py`` importable beside the benchmark modules, and the real
DB15K graph from ``MMKGC_DATASETS``.

The project's pytest configuration imports modules by path (``--import-mode=importlib``),
which puts no test folder on ``sys.path``: this folder is added here so that
``import workloads`` works. The DB15K-scale benchmarks use DB15K's real triples when
``MMKGC_DB15K`` names its folder; when only ``MMKGC_DATASETS`` is set (the folder of the
benchmark graphs, as for the tests), ``MMKGC_DB15K`` defaults to its ``DB15K/``. Without
either they time random triples of DB15K's sizes, as before.
"""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

if "MMKGC_DB15K" not in os.environ and os.environ.get("MMKGC_DATASETS"):
    _db15k = Path(os.environ["MMKGC_DATASETS"]).expanduser().resolve() / "DB15K"
    if _db15k.is_dir():
        os.environ["MMKGC_DB15K"] = str(_db15k)
