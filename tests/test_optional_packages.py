"""Each optional package hidden in turn: the test suite skips, it never fails.

``python -m pytest -q`` must pass under any combination of extras (issue 22), but CI
installs ``.[all]`` and never sees a partial install, while a CI matrix of installs would
be far too slow. So, for each optional package (:data:`OPTIONAL_PACKAGES`) that is
installed here, this test starts one pytest process in which that package is hidden (as
if not installed) and checks that

1. every test module is collected without error (a module may skip as a whole): nothing
   -- test module, shared helper, conftest or library module -- imports the package at
   import time without a guard;
2. every test that *mentions* the package skips or passes. A test mentions a package when
   its name appears (as an imported or referenced name, or as a word of a string: an
   ``importorskip`` argument, a tracker name, a skip reason) in the test's code, in the
   fixtures it uses, in the marks and parameters it has, in the code of the test-tree
   helpers it calls (recursively), or in the code of the library functions it calls
   directly (one level: e.g. a function that calls ``require("h5py", ...)``).

Only the tests that mention the package run (the others are deselected at once); most of
them reach their guard first and skip in milliseconds, so the check costs about one
collection of the suite per package, two packages at a time (about a minute on two
cores), plus the few tests that narrow their assertions on a package and so run to the
end without it (the search of ``tests/cli/test_tune.py`` without matplotlib).

Why this design. A static scan alone cannot prove that a guard works (``importorskip``,
``find_spec`` in a ``skipif``, the helpers of ``feature_models.py``, the library's
``require``) nor see import chains through the library; collecting and running with the
package really hidden does. Running the whole suite once per package would take most of
an hour. A test that does not mention a package does not need it unless it reaches it
deep inside the library; the suite's convention, which makes such a test visible here, is
to name the package where it is needed (a guard, a skip reason, a tracker name, a helper).
Where the library goes on silently without a package, a test fails by an assertion, not
by an ImportError (the search's plot files, drawn only with matplotlib: issue 22); such a
test narrows on the package by name, and so is run here to the end.
:func:`test_the_library_uses_optional_packages_silently_only_where_known` lists those
places, so that a new one prompts a look at the tests of its output.

The package is hidden by a ``sitecustomize`` module on ``PYTHONPATH`` that wraps every
finder of ``sys.meta_path`` so that it finds nothing under the hidden names: ``import``
raises ``ModuleNotFoundError`` and ``importlib.util.find_spec`` returns ``None``, as when
the package is not installed, and processes the tests start (the CLI run as a
subprocess) inherit the hiding through the environment. A package that another installed
one needs (Pillow under transformers) makes that one fail to import too, as a broken
install would.
"""
import ast
import inspect
import json
import os
import re
import subprocess
import sys
import textwrap
import types
from concurrent.futures import ThreadPoolExecutor
from importlib.util import find_spec
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
LIBRARY = ROOT / "mmkgc_pyg"
# Top-level import names of the optional extras' packages (pyproject.toml).
OPTIONAL_PACKAGES = ("matplotlib", "optuna", "mlflow", "wandb", "h5py", "transformers",
                     "sentence_transformers", "PIL", "tensorboard", "pyarrow")
HIDE_VARIABLE = "MMKGC_TEST_HIDDEN_PACKAGES"

# Runs at the start of every Python process whose PYTHONPATH holds its folder.
SITECUSTOMIZE = textwrap.dedent(f'''\
    """Hides the packages named in ${HIDE_VARIABLE} (comma-separated) from imports."""
    import os
    import sys

    _HIDDEN = frozenset(filter(None, os.environ.get("{HIDE_VARIABLE}", "").split(",")))


    class _Hiding:
        """A finder of sys.meta_path that finds nothing under the hidden names."""

        def __init__(self, inner):
            self.inner = inner

        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in _HIDDEN:
                return None
            find = getattr(self.inner, "find_spec", None)
            return None if find is None else find(name, path, target)

        def __getattr__(self, attribute):
            return getattr(self.inner, attribute)


    if _HIDDEN:
        sys.meta_path[:] = [_Hiding(finder) for finder in sys.meta_path]
        for _name in [m for m in sys.modules if m.partition(".")[0] in _HIDDEN]:
            del sys.modules[_name]


    def _chain():
        """Runs the sitecustomize this one shadows, if any."""
        import importlib.machinery
        import importlib.util

        here = os.path.dirname(os.path.abspath(__file__))
        rest = [p for p in sys.path if os.path.abspath(p or ".") != here]
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
        if spec is not None and spec.loader is not None:
            spec.loader.exec_module(importlib.util.module_from_spec(spec))


    _chain()
    ''')


# ----------------------------------------------------------- inside the hidden process
def mentions(item, package: str) -> bool:
    """Whether ``package`` is named in the test ``item``'s code, fixtures, marks,
    parameters, the test-tree helpers it calls, or the library functions it calls."""
    word = re.compile(rf"(?<!\w){re.escape(package)}(?!\w)")
    seen = set()

    def in_value(value) -> bool:
        if isinstance(value, str):
            return word.search(value) is not None
        if isinstance(value, (tuple, list, set, frozenset)):
            return any(in_value(v) for v in value)
        if isinstance(value, dict):
            return any(in_value(k) or in_value(v) for k, v in value.items())
        return False

    def in_function(function, follow: bool) -> bool:
        function = inspect.unwrap(function)
        code = getattr(function, "__code__", None)
        if code is None or code in seen:
            return False
        seen.add(code)
        namespace = dict(function.__globals__)
        for name, cell in zip(code.co_freevars, function.__closure__ or ()):
            try:
                namespace[name] = cell.cell_contents
            except ValueError:  # an empty cell
                pass
        return in_code(code, namespace, follow)

    def is_ours(module) -> bool:
        """Whether ``module`` is the library's or the test tree's."""
        return (getattr(module, "__file__", None) or "").startswith((str(LIBRARY),
                                                                     str(TESTS)))

    def in_object(obj, follow: bool) -> bool:
        """A function (or a test-tree helper class) that ``follow``-ed code names."""
        if not follow:
            return False
        if inspect.isfunction(obj):
            source = inspect.unwrap(obj).__code__.co_filename
            if source.startswith(str(TESTS)):
                return in_function(obj, follow=True)
            return source.startswith(str(LIBRARY)) and in_function(obj, follow=False)
        if isinstance(obj, type) and (getattr(sys.modules.get(obj.__module__), "__file__",
                                              None) or "").startswith(str(TESTS)):
            return any(in_function(f, True) for f in vars(obj).values()
                       if inspect.isfunction(f))
        return False

    def in_code(code, namespace, follow: bool) -> bool:
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                if in_code(const, namespace, follow):
                    return True
            elif in_value(const):
                return True
        names = code.co_names + code.co_freevars
        if package in names:
            return True
        for name in names:
            obj = namespace.get(name)
            if follow and in_value(obj):  # a constant of the test tree (a list of names)
                return True
            if isinstance(obj, types.ModuleType) and is_ours(obj):  # module.attribute
                if any(in_object(getattr(obj, attribute, None), follow)
                       for attribute in code.co_names):
                    return True
            elif in_object(obj, follow):
                return True
        return False

    fixtures = getattr(item, "_fixtureinfo", None)
    definitions = [d for defs in (fixtures.name2fixturedefs.values() if fixtures else ())
                   for d in defs]
    return (in_value(item.nodeid)
            or any(in_value(list(mark.args)) or in_value(mark.kwargs)
                   for mark in item.iter_markers())
            or in_value(list(getattr(getattr(item, "callspec", None), "params", {}).values()))
            or in_object(getattr(item, "function", None), True)
            or any(in_object(getattr(d, "func", None), True) for d in definitions))


class HiddenPackageReport:
    """The pytest plugin of the process with ``package`` hidden: keeps the tests that
    mention it and writes what happened (collection, outcomes) to ``report`` as JSON."""

    def __init__(self, package: str, report: str):
        self.package, self.report = package, Path(report)
        self.result = {"hidden": self.check_hidden(), "collect_errors": {},
                       "collect_skipped": {}, "selected": [], "outcomes": {}}

    def check_hidden(self) -> bool:
        try:
            __import__(self.package)
        except ModuleNotFoundError as error:
            return error.name == self.package and find_spec(self.package) is None
        return False

    def pytest_collectreport(self, report):
        if report.failed:
            self.result["collect_errors"][report.nodeid] = str(report.longrepr)[-3000:]
        elif report.skipped:
            self.result["collect_skipped"][report.nodeid] = str(report.longrepr)[-300:]

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config, items):
        keep = [item for item in items
                if Path(str(item.path)).resolve() != Path(__file__).resolve()
                and mentions(item, self.package)]
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep
        self.result["selected"] = [item.nodeid for item in keep]

    def pytest_runtest_logreport(self, report):
        outcomes = self.result["outcomes"]
        if report.failed:
            outcomes[report.nodeid] = f"failed ({report.when}): {report.longrepr}"[-3000:]
        elif report.skipped or report.when == "call":
            outcomes.setdefault(report.nodeid, report.outcome)

    def pytest_sessionfinish(self):
        self.report.write_text(json.dumps(self.result, indent=1))


def run_hidden(package: str, folder: Path) -> dict:
    """Runs the test suite's tests that mention ``package`` in a process that hides it."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    report = folder / "report.json"
    env = {**os.environ, HIDE_VARIABLE: package,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(folder),
                                                       os.environ.get("PYTHONPATH")]))}
    env.pop("PYTEST_ADDOPTS", None)  # e.g. -n for xdist: this plugin needs one process
    script = ("import sys; sys.path.insert(0, sys.argv[1]); import pytest; "
              "from test_optional_packages import HiddenPackageReport as Report; "
              "sys.exit(pytest.main(sys.argv[4:], plugins=[Report(sys.argv[2], "
              "sys.argv[3])]))")
    proc = subprocess.run(
        [sys.executable, "-c", script, str(TESTS), package, str(report), str(TESTS),
         "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--basetemp", str(folder / "tmp"),
         "--continue-on-collection-errors"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    result = json.loads(report.read_text()) if report.is_file() else {}
    return {**result, "returncode": proc.returncode,
            "output": proc.stdout[-4000:] + proc.stderr[-4000:]}


# ---------------------------------------------------------------------------- the tests
def test_each_optional_package_hidden_the_tests_that_use_it_skip(tmp_path):
    installed = [p for p in OPTIONAL_PACKAGES if find_spec(p) is not None]
    if not installed:
        pytest.skip("no optional package is installed: the suite already runs without them")
    with ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
        results = dict(zip(installed, pool.map(
            lambda package: run_hidden(package, tmp_path / package), installed)))

    problems = []
    for package, result in results.items():
        outcomes = result.get("outcomes", {})
        failed = {k: v for k, v in outcomes.items() if v not in ("passed", "skipped")}
        skips = [k for k, v in outcomes.items() if v == "skipped"]
        if "hidden" not in result:
            problems.append(f"{package} hidden: no report ({result['output']})")
        elif not result["hidden"]:
            problems.append(f"{package}: still importable with it hidden")
        elif result["returncode"] not in (0, 5) or result["collect_errors"] or failed:
            details = {**result["collect_errors"], **failed}
            problems.append(f"{package} hidden: exit status {result['returncode']}; "
                            + "\n".join(f"{k}: {v}" for k, v in details.items())
                            + ("" if details else result["output"]))
        elif not (skips or result["collect_skipped"]):
            problems.append(f"{package} hidden: nothing skipped, so no test checked its "
                            f"absence (selected: {result['selected']})")
    assert not problems, "\n\n".join(problems)


def imported_names(node: ast.AST) -> list:
    """The top-level names ``node`` imports: ``import``/``from`` statements, and calls
    with a literal module name (``require("h5py", ...)``, ``import_module``,
    ``find_spec``)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        names = [node.module or ""]
    elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
          and isinstance(node.args[0].value, str)
          and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
              "require", "import_module", "find_spec", "__import__", "importorskip")):
        names = [node.args[0].value]
    else:
        names = []
    return [name.split(".")[0] for name in names]


def silent_optional_imports(tree: ast.AST, packages) -> set:
    """The optional packages that ``tree`` goes on without: imported inside a ``try``
    whose handler of ``ImportError`` (``ModuleNotFoundError``, ``MissingExtraError``) does
    not raise, or looked up with ``find_spec``."""
    errors = ("ImportError", "ModuleNotFoundError", "MissingExtraError")
    found = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(
                node.func, "id", None)) == "find_spec"):
            found |= set(imported_names(node)) & set(packages)
        if not isinstance(node, ast.Try) or not any(
                any(isinstance(n, (ast.Name, ast.Attribute))
                    and getattr(n, "id", getattr(n, "attr", None)) in errors
                    for n in ast.walk(handler.type or ast.Name("ImportError")))
                and not any(isinstance(n, ast.Raise) for s in handler.body
                            for n in ast.walk(s))
                for handler in node.handlers):
            continue
        for statement in node.body:
            for n in ast.walk(statement):
                found |= set(imported_names(n)) & set(packages)
    return found


def test_the_library_uses_optional_packages_silently_only_where_known():
    """Where the library goes on without an optional package (no error), the tests of
    that output must narrow their assertions on the package by name: the check above runs
    them with it hidden only then. These are the places; a new one belongs here once its
    tests do."""
    silent = {}
    for path in sorted(LIBRARY.rglob("*.py")):
        for package in silent_optional_imports(ast.parse(path.read_text()),
                                               OPTIONAL_PACKAGES):
            silent.setdefault(path.relative_to(ROOT).as_posix(), set()).add(package)
    assert silent == {
        # Optuna's plots of a search (tests/cli/test_tune.py checks the files only
        # where matplotlib is importable, and none without it).
        "mmkgc_pyg/hpo/study.py": {"matplotlib"},
    }


def test_silent_optional_imports_are_those_the_code_goes_on_without():
    code = ast.parse(textwrap.dedent("""
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            plt = None
        try:
            h5py = require("h5py", "hdf5", "reading HDF5 files")
        except MissingExtraError as error:
            raise InputError(str(error))
        HAS_PIL = importlib.util.find_spec("PIL") is not None
        try:
            from wandb import init
        except (OSError, extras.MissingExtraError):
            init = None
        import optuna
        """))
    assert silent_optional_imports(code, OPTIONAL_PACKAGES) == {"matplotlib", "PIL", "wandb"}


def test_mentions_finds_the_package_in_helpers_fixtures_and_marks():
    """The selection of the hidden runs, on this module's own functions."""

    class Item:
        nodeid = "tests/test_x.py::test_x"

        def __init__(self, function, marks=(), fixtures=()):
            self.function, self.marks = function, list(marks)
            self._fixtureinfo = types.SimpleNamespace(name2fixturedefs={
                f.__name__: [types.SimpleNamespace(func=f)] for f in fixtures})

        def iter_markers(self):
            return iter(self.marks)

    def uses_helper():
        return run_hidden  # a test-tree helper whose code names none of the packages

    def imports_it():
        import h5py  # noqa: F401

    def hides_it(monkeypatch):
        monkeypatch.setitem(sys.modules, "wandb", None)

    # new_figure names matplotlib; main only calls new_figure (two levels down).
    from mmkgc_pyg.cli import plot

    def calls_the_library():
        return plot.new_figure()

    def calls_the_library_indirectly():
        return plot.main([])

    assert mentions(Item(imports_it), "h5py") and not mentions(Item(imports_it), "PIL")
    assert mentions(Item(lambda: imports_it()), "h5py")  # through a helper it calls
    assert mentions(Item(hides_it), "wandb")
    assert mentions(Item(lambda: None, fixtures=[hides_it]), "wandb")  # through a fixture
    assert not mentions(Item(lambda: None, fixtures=[imports_it]), "wandb")
    assert not mentions(Item(uses_helper), "optuna")
    assert mentions(Item(uses_helper, [pytest.mark.skipif(True, reason="needs optuna")
                                       .mark]), "optuna")
    assert not mentions(Item(lambda: "PILLOW"), "PIL")
    assert mentions(Item(lambda: "needs PIL.Image"), "PIL")
    assert mentions(Item(lambda: OPTIONAL_PACKAGES), "tensorboard")  # a list of names
    assert mentions(Item(calls_the_library), "matplotlib")
    assert not mentions(Item(calls_the_library_indirectly), "matplotlib")  # one level
