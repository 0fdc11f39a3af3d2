#!/usr/bin/env python3
"""Checks supra's include graph: every project #include points to the same folder or a lower layer, and no file
includes itself through a chain (no include loop). Layers, lowest first (docs/architecture.md):

    core/base, core/tokenizer  <  kernels  <  core/model  <  core/supra  <  core/formats  <  data
    <  training, eval  <  cli, bench            (tests may include anything)

Usage: scripts/tools/check_layers.py [REPO]   — prints the violations and exits 1 if there are any.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

LAYERS = [
    ("core/base",),
    ("core/tokenizer",),  # a separate library: only core/base below it
    ("kernels",),
    ("core/model",),
    ("core/supra",),
    ("core/formats",),
    ("data",),
    ("training", "eval"),
    ("cli", "bench"),
]
SOURCES = (".h", ".cpp", ".cu", ".cuh")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def folder_of(path: str) -> str | None:
    for group in LAYERS:
        for f in group:
            if path == f or path.startswith(f + "/"):
                return f
    return None


def rank(folder: str) -> int:
    return next(i for i, g in enumerate(LAYERS) if folder in g)


def main(repo: Path) -> int:
    files = {p.relative_to(repo).as_posix(): p for p in repo.rglob("*") if p.suffix in SOURCES
             and not any(part in ("build", "deps", "third_party", ".git") or part.startswith("build")
                         for part in p.relative_to(repo).parts)}
    graph: dict[str, list[str]] = {}
    problems = []
    for name, path in sorted(files.items()):
        incs = [i for i in INCLUDE.findall(path.read_text(errors="replace")) if i in files]
        graph[name] = incs
        src = folder_of(name)
        if src is None:
            continue  # tests, tools: may include anything
        for inc in incs:
            dst = folder_of(inc)
            if dst is None:
                problems.append(f"{name}: includes {inc}, which belongs to no library layer")
            elif dst != src and rank(dst) >= rank(src):
                problems.append(f"{name} ({src}) includes {inc} ({dst}): a layer may include only lower layers")
    # Include loops: depth-first search for a back edge.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in graph.get(n, []):
            if state.get(m) == 1:
                problems.append("include loop: " + " -> ".join(stack[stack.index(m):] + [m]))
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)
    for p in problems:
        print(p)
    print(f"{len(graph)} files, {sum(map(len, graph.values()))} project includes, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2])))
