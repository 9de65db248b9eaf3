#!/usr/bin/env python3
"""Checks that livetally's modules depend on each other one way only.

Reads every `crate::<module>` path in src/ (in `use` lines and inline paths, grouped
imports included), builds the graph of top-level modules, and fails when
  - the graph has a cycle, or two files of one folder import each other, or
  - a module imports one in its own or a higher layer of LAYERS below, or
  - the load tool imports anything but the protocol and the leaf helpers.
Prints the graph, lowest layer first. Run: python3 scripts/check-modules.py
"""

import pathlib
import re
import sys

# Lowest first. A module may import only modules of LOWER layers. The data path
# (ws -> tally -> store -> broadcast -> back to the sockets) is described in
# docs/architecture.md; this table is how the imports are allowed to point.
LAYERS = [
    ["util", "broadcast::outlet"],   # leaf helpers: clock, durations, fd limit, bind, CSV cells; the broadcaster's socket writer
    ["protocol"],                    # the wire format and its one table of patterns, limits, codes
    ["campaign", "config", "org"],   # the domain types (checked by the protocol's patterns), the flags, the organisation tree
    ["store", "auth", "clients", "metrics"],  # the shared truth, secrets, per-client limits, Prometheus
    ["error", "tls"],                # the one HTTP error type (maps store errors); the certificate and handshakes (per-peer caps)
    ["tally"],                       # node-local counts and the flusher into the store
    ["broadcast", "webhooks"],       # stats back to every tally's sockets; events out to receivers
    ["ws"],                          # admission and the socket loop, writing into tallies
    ["http"],                        # the JSON API and pages (plain GETs of the socket URL)
    ["load"],                        # the load tool: a client of the protocol only
    ["node"],                        # wires it all (its builder) and runs it
    ["sim"],                         # `livetally simulate`: virtual nodes built by the node's builder
]
# What the load tool may use: it must work against any node, so it speaks only the wire.
LOAD_MAY_USE = {"protocol", "util"}

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"
RANK = {m: i for i, layer in enumerate(LAYERS) for m in layer}
# Leaf files filed under the module they serve but layered on their own: the socket the
# broadcaster writes into lives in `broadcast/`, yet each campaign's tally (a lower layer)
# keeps the registry of them, so it is a leaf below both.
SUBMODULES = {m for m in RANK if "::" in m}
# Test-only files (`tests.rs`, `testing.rs`, `*_tests.rs`) may build their parts with the
# node's builder, as the node and the simulator do: wiring is written once. Nothing else
# in them is exempt, and the shipped code never sees them.
TESTS_MAY_USE = {"node"}


def is_test_file(path: pathlib.Path) -> bool:
    return path.stem in ("tests", "testing") or path.stem.endswith("_tests")


def top_module(path: pathlib.Path) -> str | None:
    rel = path.relative_to(SRC)
    if rel.parts[0] in ("lib.rs", "main.rs"):
        return None  # the crate root and the binary sit above everything
    sub = "::".join([*rel.parts[:-1], rel.stem])
    if sub in SUBMODULES:
        return sub
    return rel.parts[0].removesuffix(".rs")


def module_of(path: str) -> str:
    """`broadcast::outlet::Outlet` -> `broadcast::outlet`; `store::Store` -> `store`."""
    parts = path.split("::")
    two = "::".join(parts[:2])
    return two if two in SUBMODULES else parts[0]


def references(text: str) -> set[str]:
    text = re.sub(r"//[^\n]*", "", text)  # comments may name modules freely
    found = {module_of(p) for p in re.findall(r"\bcrate::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)?)", text)}
    # `use crate::{a::X, b}`: every first segment inside the braces
    for group in re.findall(r"\bcrate::\{([^}]*)\}", text, flags=re.S):
        found |= {module_of(seg.strip()) for seg in group.split(",") if seg.strip()}
    return found


def main() -> int:
    graph: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.rs")):
        module = top_module(path)
        if module is None:
            continue
        graph.setdefault(module, set())
        refs = references(path.read_text()) - {module}
        if is_test_file(path):
            refs -= TESTS_MAY_USE
        graph[module] |= refs

    problems = []
    unknown = sorted(set(graph) - set(RANK))
    if unknown:
        problems.append(f"modules missing from LAYERS: {', '.join(unknown)}")
    for module, deps in sorted(graph.items()):
        for dep in sorted(deps):
            if dep not in graph:
                continue  # e.g. a macro or a re-export at the crate root
            if module == "load" and dep not in LOAD_MAY_USE:
                problems.append(f"load imports {dep}: the load tool may use only {sorted(LOAD_MAY_USE)}")
            elif module in RANK and dep in RANK and RANK[dep] >= RANK[module]:
                problems.append(f"{module} imports {dep}, which is not in a lower layer")

    # Cycles (also among modules the table would not catch).
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if d not in graph:
                continue
            if state.get(d) == 1:
                problems.append("cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)

    # Inside a module: sibling files must not import each other in a circle either
    # (`super::x` from a file beside x.rs; mod.rs, the parent, is not a sibling).
    for folder in sorted({p.parent for p in SRC.rglob("*.rs")}):
        files = {p.stem: p for p in folder.glob("*.rs") if p.stem not in ("mod", "lib", "main")}
        sib = {
            name: set(re.findall(r"\bsuper::([a-z_][a-z0-9_]*)", re.sub(r"//[^\n]*", "", p.read_text())))
            & (set(files) - {name})
            for name, p in files.items()
        }
        for a, deps in sib.items():
            for b in deps:
                if a < b and a in sib.get(b, set()):
                    problems.append(f"{folder.relative_to(SRC)}: {a}.rs and {b}.rs import each other")

    for layer in LAYERS:
        for m in layer:
            if m in graph:
                deps = sorted(d for d in graph[m] if d in graph)
                print(f"{m:10} -> {', '.join(deps) if deps else '(nothing)'}")
    if problems:
        print("\nmodule graph check FAILED:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print("\nmodule graph: no cycles, every import points to a lower layer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
