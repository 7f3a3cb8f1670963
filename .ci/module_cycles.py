#!/usr/bin/env python3
"""Fails when top-level modules of hype-runtime import each other in a cycle.

A module is a file or folder directly under hype-runtime/src (hype_run.rs,
backend/, ...). An edge A -> B is a `crate::B` path anywhere in A's code
(comments and doc comments excluded; `use crate::{B, C}` groups too).
Prints every cycle found and exits 1, or says there are none.
"""
import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "hype-runtime" / "src"


def module_of(path):
    rel = path.relative_to(SRC)
    name = rel.parts[0]
    return name[:-3] if name.endswith(".rs") else name


def code_of(text):
    # Strip comments (line comments, block comments) and string literals.
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def main():
    modules = {module_of(p) for p in SRC.rglob("*.rs")} - {"lib", "main"}
    edges = {m: set() for m in modules}
    for path in SRC.rglob("*.rs"):
        source = module_of(path)
        if source in ("lib", "main"):
            continue
        code = code_of(path.read_text())
        for group in re.findall(r"crate::\{([^}]*)\}", code):
            for name in re.findall(r"(?:^|,)\s*(\w+)", group):
                if name in modules and name != source:
                    edges[source].add(name)
        for name in re.findall(r"crate::(\w+)", code):
            if name in modules and name != source:
                edges[source].add(name)
    # Strongly connected components (Tarjan).
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                sccs.append(sorted(scc))

    sys.setrecursionlimit(10000)
    for v in sorted(modules):
        if v not in index:
            visit(v)
    if sccs:
        for scc in sccs:
            inner = [f"{a} -> {b}" for a in scc for b in sorted(edges[a]) if b in scc]
            print("import cycle between top-level modules: " + ", ".join(scc))
            print("  " + "; ".join(inner))
        return 1
    print(f"no import cycles between the {len(modules)} top-level modules of hype-runtime")
    return 0


if __name__ == "__main__":
    sys.exit(main())
