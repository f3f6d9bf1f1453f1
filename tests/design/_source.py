"""Reading fcnkit's own source for the design tests: every module of the package, parsed
with ``ast`` (nothing is imported or executed)."""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "fcnkit"


@dataclass(frozen=True)
class Module:
    """One module: dotted name (``fcnkit.compile.builder``; a package is its
    ``__init__``), path relative to the repository root, parsed tree, line count."""

    name: str
    path: str
    tree: ast.Module
    lines: int


@functools.cache
def modules() -> tuple[Module, ...]:
    """Every ``.py`` file under fcnkit/, parsed (the generated caffe_pb2 included); read
    once per test session (the trees are not to be modified)."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT)
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        text = path.read_text(encoding="utf-8")
        out.append(Module(".".join(parts), rel.as_posix(), ast.parse(text, str(rel)),
                          len(text.splitlines())))
    return tuple(out)
