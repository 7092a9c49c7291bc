"""The shape of the package (README "Architecture"): thin stages, a library free of configuration, no cycles.

These read the source with ``ast``; they fail on a stage that imports another stage, a stage module that
never reads the configuration (library code in the wrong place), a library module that imports Hydra, an
import cycle anywhere in ``wsl/``, or an output path spelled by hand outside :mod:`wsl.layout`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from wsl.stages import NEEDS, RUNS_FIRST, STAGES

WSL = Path(__file__).resolve().parent.parent / "wsl"
SHARED = {"wsl.stages", "wsl.stages.common"}
CONFIG_CODE = {"wsl.run", "wsl.config_schema"}  # the entry point and the schemas read configuration too


def _modules() -> dict[str, Path]:
    out = {}
    for path in WSL.rglob("*.py"):
        parts = path.relative_to(WSL.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(name: str) -> set[str]:
    """Every wsl module ``name`` imports, at any depth of its code (lazy imports count)."""
    tree = ast.parse(MODULES[name].read_text())
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + [base]
                ).strip(".")
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m in MODULES and m != name}


def test_stage_tables_agree():
    assert set(NEEDS) == set(STAGES)
    assert all(need in STAGES for needs in NEEDS.values() for need in needs)
    assert all(need in NEEDS[stage] for stage, need in RUNS_FIRST)


def test_every_stage_module_is_a_thin_stage():
    stage_modules = {n for n in MODULES if n.startswith("wsl.stages.")} - SHARED
    assert stage_modules == set(STAGES.values()), "wsl/stages/ holds a module that is not a stage"
    for name in stage_modules:
        source = MODULES[name].read_text()
        assert "def run(cfg: DictConfig)" in source and "cfg.stage" in source, name
        assert len(source.splitlines()) <= 170, f"{name} has {len(source.splitlines())} lines"
        others = {m for m in _imports(name) if m.startswith("wsl.stages")} - SHARED
        assert not others, f"{name} imports the stage(s) {others}"


def test_library_never_reads_configuration():
    library = [n for n in MODULES if not n.startswith("wsl.stages") and n not in CONFIG_CODE]
    for name in library:
        source = MODULES[name].read_text()
        assert not re.search(r"^\s*(from|import) (hydra|omegaconf)\b", source, re.M), name
        assert not any(m.startswith("wsl.stages") for m in _imports(name)), name


def test_no_import_cycle():
    graph = {n: _imports(n) for n in MODULES}
    # A package __init__ re-exporting its submodules is not a cycle: drop edges from a module to its parents.
    graph = {n: {m for m in deps if not n.startswith(m + ".")} for n, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        state[n] = 1
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(m) :], m]))
            if m not in state:
                visit(m, [*path, m])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])


def test_output_layout_has_one_owner():
    pattern = re.compile(
        r'"(cams|boxes|seeds|sec|labels|eval|benchmark|visualize)"\s*/|/\s*"(cams|boxes|seeds|sec|labels|eval)"'
    )
    offenders = [
        f"{path.relative_to(WSL.parent)}:{i}"
        for name, path in MODULES.items()
        if name != "wsl.layout"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not offenders, offenders


def test_every_package_is_installed():
    """pyproject.toml lists the packages explicitly (to map conf/ to wsl.conf): none may be forgotten."""
    import tomllib

    listed = set(tomllib.loads((WSL.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {n for n, p in MODULES.items() if p.name == "__init__.py"}
    assert listed == on_disk | {"wsl.conf"}
