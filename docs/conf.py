"""Sphinx configuration: the API reference from the docstrings (autodoc, Google-style
sections by napoleon), Markdown pages (MyST) and the PyData theme."""
import importlib

import mmkgc_pyg

project = "mmkgc-pyg"
author = "mmkgc-pyg developers"
release = version = mmkgc_pyg.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
templates_path = ["_templates"]
autosummary_generate = True  # one page per module, into api/generated/ (not committed)
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "pydata_sphinx_theme"
html_title = f"mmkgc-pyg {release}"
html_static_path = ["_static"]
html_theme_options = {"navigation_depth": 2, "show_toc_level": 2}


def _defined_name(target: str):
    """``mmkgc_pyg.nn.AdaMF`` (a package's re-export; also ``...AdaMF.fuse``) -> the name
    where it is defined and documented, ``mmkgc_pyg.nn.adamf.AdaMF``; None otherwise."""
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        obj = getattr(module, parts[cut], None)
        if obj is None or not hasattr(obj, "__qualname__"):
            return None
        defined = ".".join([obj.__module__, obj.__qualname__, *parts[cut + 1:]])
        return defined if defined != target else None
    return None


def _link_reexports(app, env, node, contnode):
    """Docstrings name classes as a package exports them (``mmkgc_pyg.nn.AdaMF``, as in
    PyG); the reference documents each where it is defined."""
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("mmkgc_pyg."):
        return None
    defined = _defined_name(target)
    if defined is None:
        return None
    return env.domains["py"].resolve_xref(env, node["refdoc"], app.builder, node["reftype"],
                                          defined, node, contnode)


def setup(app):
    app.connect("missing-reference", _link_reexports)
