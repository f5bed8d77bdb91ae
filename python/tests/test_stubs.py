"""The package's type stubs and docstrings cover its whole public API: every name in `__all__`
is declared in `__init__.pyi` (with every public method and property of `Experiment`), and every
public function, class and method has a docstring."""

import ast
import inspect
from pathlib import Path

import hypermod

STUBS = Path(__file__).resolve().parents[1] / "hypermod" / "__init__.pyi"


def stub_names():
    tree = ast.parse(STUBS.read_text())
    top, members = set(), {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            top.add(node.name)
        if isinstance(node, ast.ClassDef):
            members[node.name] = {
                n.name for n in node.body if isinstance(n, ast.FunctionDef)
            }
    return top, members


def test_every_public_name_has_a_stub():
    top, members = stub_names()
    assert set(hypermod.__all__) <= top, set(hypermod.__all__) - top
    public = {
        name
        for name, _ in inspect.getmembers(hypermod.Experiment)
        if not name.startswith("_")
    } | {"__init__"}
    assert public <= members["Experiment"], public - members["Experiment"]


def test_every_public_function_and_method_has_a_docstring():
    missing = [n for n in hypermod.__all__ if not inspect.getdoc(getattr(hypermod, n))]
    for name, member in inspect.getmembers(hypermod.Experiment):
        if not name.startswith("_") and not inspect.getdoc(member):
            missing.append(f"Experiment.{name}")
    assert not missing, missing
