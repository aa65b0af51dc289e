"""Package layout rules: no import cycle in ``mgdet``, packages in one order (none imports a package above it),
argparse only under ``mgdet/cli/``, ``mgdet --help`` without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mgdet"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, modules: dict[str, Path], module_level: bool) -> set[str]:
    """mgdet modules that ``name`` imports (``from a import b`` counts as ``a.b`` when that is a module).

    ``module_level``: only statements executed at import (not inside functions; ``if TYPE_CHECKING`` blocks
    are left out as they never run)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes: list[ast.AST] = []
    if module_level:
        stack = list(tree.body)
        while stack:
            node = stack.pop()
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                stack += node.body + node.orelse + getattr(node, "handlers", []) + getattr(node, "finalbody", [])
            elif isinstance(node, ast.ExceptHandler):
                stack += node.body
            else:
                nodes.append(node)
    else:
        nodes = list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            for a in node.names:
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base)
    return {m for m in found if m in modules and m != name}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_import_graph_has_no_cycle() -> None:
    """The imports between mgdet modules form a DAG: those run at import time, and also every import
    statement anywhere (function-level imports included, e.g. the former ``deploy`` <-> ``export`` pair)."""
    modules = _modules()
    for module_level in (True, False):
        graph = {name: _imports(name, path, modules, module_level) for name, path in modules.items()}
        assert "mgdet.postprocess" in graph["mgdet.models.detector"]
        assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


#: mgdet's packages and top-level modules from the bottom up: each imports only what comes before it (or
#: itself), at module level or inside a function. A new package takes its place here.
PACKAGE_ORDER = (
    "mgdet", "utils", "errors", "limits", "catalog", "boxes", "boxes_np", "anchors", "strategies", "assign",
    "assign_fcos", "losses", "stats", "nms", "postprocess", "outputs", "data", "models", "evaluation", "deploy",
    "zoo", "engine", "export", "viz", "demo", "cli", "__main__",
)  # fmt: skip


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_no_package_imports_one_above_it() -> None:
    modules = _modules()
    rank = {name: i for i, name in enumerate(PACKAGE_ORDER)}
    missing = sorted({_package(m) for m in modules} - set(rank))
    assert not missing, f"place these packages in PACKAGE_ORDER: {missing}"
    upward = [
        f"{name} -> {dep}"
        for name, path in modules.items()
        for dep in sorted(_imports(name, path, modules, module_level=False))
        if rank[_package(dep)] > rank[_package(name)]
    ]
    assert not upward, "imports of a package above the importer's:\n" + "\n".join(upward)


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_argparse_only_in_the_cli() -> None:
    modules = _modules()
    users = [
        name for name, path in modules.items() if not name.startswith("mgdet.cli") and "argparse" in _imports_any(path)
    ]
    assert users == []


def test_print_only_in_the_cli() -> None:
    """Library code hands messages to a ``log`` callable; only ``mgdet.cli`` calls ``print``."""

    def calls_print(path: Path) -> bool:
        return any(
            isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"
            for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )

    assert [name for name, path in _modules().items() if not name.startswith("mgdet.cli") and calls_print(path)] == []


def _imports_any(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys, mgdet.cli\n"
        "try:\n    mgdet.cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage: mgdet" in proc.stdout
    assert proc.stdout.strip().endswith("NO-TORCH")


def test_test_files_mirror_the_package_with_unique_names() -> None:
    """tests/<area>/test_*.py without __init__.py: pytest's default import mode needs unique basenames."""
    tests = Path(__file__).resolve().parent
    files = sorted(tests.rglob("test_*.py"))
    names = [p.name for p in files]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert not list(tests.rglob("__init__.py"))
    assert {p.parent.name for p in files} >= {"assign", "cli", "data", "engine", "evaluation", "models"}


def test_names_and_the_default_input_size_are_written_once() -> None:
    """The lists of detectors, backbones and formats and the default input size live in mgdet/catalog.py only."""
    import re

    from mgdet.catalog import BACKBONES, DATA_FORMATS, DETECTORS, as_hw

    patterns = {
        "detectors": re.compile(r'"fssd",\s*"retinanet"'),
        "backbones": re.compile(r'"(resnet18|vgg16|mobilenet_v2)",\s*"(resnet18|vgg16|mobilenet_v2)"'),
        "formats": re.compile(r'"voc",\s*"coco",\s*"yolo"'),
        "input size 320": re.compile(r"(=|,|\()\s*320\s*(\)|,|$)", re.M),
    }
    found = [
        f"{path.relative_to(PACKAGE.parent)}: {what}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "catalog.py" and "backbones/mobilenet.py" not in path.as_posix()  # 320 channels there
        for what, pattern in patterns.items()
        if pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert not found, "written again outside mgdet/catalog.py:\n" + "\n".join(found)
    assert DETECTORS[-1] == "fcos" and "mobilenet_v2" in BACKBONES and DATA_FORMATS == ("voc", "coco", "yolo")
    assert as_hw(256) == (256, 256) and as_hw([192, 320]) == (192, 320) and as_hw((64.0, 96)) == (64, 96)


def test_the_assignment_defaults_are_written_once() -> None:
    """sigma, the IoU thresholds and the other rules' knobs get their defaults from AssignParams only."""
    import re

    pattern = re.compile(
        r"\b(sigma|pos_iou|neg_iou|fcos_radius|radius|atss_topk|tal_topk|tal_alpha|tal_beta|topk|alpha|beta)\b"
        r"\s*(:\s*[\w| ]+)?=\s*(2\.0|0\.5|0\.4|1\.5|9|13|1\.0|6\.0)\b"
        r'|"(sigma|pos_iou|neg_iou)",\s*(2\.0|0\.5|0\.4)\b'  # cfg.get("sigma", 2.0)
    )
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{n}: {line.strip()}"
        for path in sorted((PACKAGE / "assign").rglob("*.py")) + [PACKAGE / "engine" / "config.py",
                                                                  PACKAGE / "models" / "detector.py",
                                                                  PACKAGE / "viz" / "assignment.py"]
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]  # fmt: skip
    assert not found, "restated assignment defaults (use mgdet.strategies.AssignParams):\n" + "\n".join(found)
