"""The import rules of docs/ARCHITECTURE.md, read from every module's source with `ast`: a broken rule
fails here, naming the file, the line and the import."""

from __future__ import annotations

import ast
import pathlib
from typing import Iterator, List, Tuple

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

# package -> modules it must not import (a name covers its submodules too)
RULES = {
    "titan/core": ("sqlite3", "zmq", "socket", "os", "threading", "time", "subprocess", "signal", "select",
                   "selectors", "psutil", "titan.net", "titan.master", "titan.worker", "titan.cli", "titan.web",
                   "titan_sdk"),
    "titan/net": ("titan.master", "titan.worker", "titan.cli", "titan.web", "titan_sdk"),
    "titan_sdk": ("titan.master", "titan.worker", "titan.cli", "titan.web"),
    # the MCP server reaches the master only through TitanClient
    "titan/mcp": ("titan.master", "titan.worker", "titan.web", "titan.net.protocol", "zmq"),
}


def imported_names(source: str, module: str) -> Iterator[Tuple[int, str]]:
    """(line, absolute module name) for every import in the source, inside functions too."""
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:   # relative: resolve against this module's package
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            yield node.lineno, base
            for alias in node.names:   # `from titan import cli` imports the module titan.cli
                yield node.lineno, f"{base}.{alias.name}"


def is_within(name: str, forbidden: str) -> bool:
    return name == forbidden or name.startswith(forbidden + ".")


def broken_rules(root: pathlib.Path, folder: str, forbidden: tuple) -> List[str]:
    problems = []
    for path in sorted((root / folder).rglob("*.py")):
        relative = path.relative_to(root)
        module = ".".join(relative.with_suffix("").parts)
        for line, name in imported_names(path.read_text(), module):
            hit = next((f for f in forbidden if is_within(name, f)), None)
            if hit:
                problems.append(f"{relative}:{line} imports {name} ({folder} must not import {hit})")
    return problems


@pytest.mark.parametrize("folder", sorted(RULES))
def test_import_rules_hold(folder):
    assert (ROOT / folder).is_dir(), f"{folder} is missing"
    problems = broken_rules(ROOT, folder, RULES[folder])
    assert not problems, "\n".join(problems)


def test_the_checker_names_a_broken_rule(tmp_path):
    """The rule test can fail: a module that imports what its package must not is named, with its line."""
    bad = tmp_path / "titan" / "core" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("import heapq\n\ndef later():\n    from titan.net import protocol\n    import os.path\n")
    assert broken_rules(tmp_path, "titan/core", RULES["titan/core"]) == [
        "titan/core/bad.py:4 imports titan.net (titan/core must not import titan.net)",
        "titan/core/bad.py:4 imports titan.net.protocol (titan/core must not import titan.net)",
        "titan/core/bad.py:5 imports os.path (titan/core must not import os)",
    ]


def test_relative_imports_are_resolved():
    assert list(imported_names("from ..net import protocol\n", "titan.core.scheduler")) == [
        (1, "titan.net"), (1, "titan.net.protocol")]


def test_no_module_is_left_flat_beside_the_packages():
    """master_*.py, worker_*.py and cli_*.py belong in their packages."""
    flat = sorted(p.name for p in (ROOT / "titan").glob("*.py")
                  if p.name.startswith(("master", "worker", "cli", "executor", "forkserver", "keys")))
    assert flat == []


def test_every_docs_page_is_linked_from_the_readme_and_every_link_resolves():
    import re

    readme = (ROOT / "README.md").read_text()
    linked = set(re.findall(r"\]\((docs/[^)#]+)\)", readme))
    assert linked, "the README links no docs page"
    missing = sorted(path for path in linked if not (ROOT / path).is_file())
    assert not missing, f"README links pages that do not exist: {missing}"
    pages = {f"docs/{page.name}" for page in (ROOT / "docs").glob("*.md")}
    assert sorted(pages - linked) == [], "docs pages no README link leads to"
