"""Import direction (docs/ARCHITECTURE.md §1, "Layers"): every module belongs to one layer and imports only
from the layers below it; the packages form no cycle; the core is pure; River and each Kafka client library
live behind one boundary.

Imports are read from the source with `ast`, so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "streamdrift"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def imports_of(path: Path) -> frozenset[str]:
    """Every module a file imports (absolute names; relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base)
                name = f"{prefix}.{node.module}" if node.module else prefix
            else:
                name = node.module or ""
            found.add(name)
            # `from streamdrift import service` imports the submodule.
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return frozenset(found)


def source_files(under: str = "") -> list[Path]:
    return sorted((PACKAGE / under).rglob("*.py"))


def rel(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def importers_of(top_level: str) -> set[str]:
    return {
        rel(path)
        for path in source_files()
        if any(name == top_level or name.startswith(top_level + ".") for name in imports_of(path))
    }


def is_within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


# Every module of the package, by layer, lowest first (docs/ARCHITECTURE.md §1). A new top-level module or
# package must be placed here: the test fails for one that is not.
LAYERS: dict[str, tuple[str, ...]] = {
    "foundation": ("streamdrift", "streamdrift.errors", "streamdrift.ports"),
    "core": ("streamdrift.core",),
    "adapters": ("streamdrift.kafka", "streamdrift.confluent"),
    "config": ("streamdrift.config",),
    "tools": (
        "streamdrift.replay",
        "streamdrift.tune",
        "streamdrift.report",
        "streamdrift.reading",
        "streamdrift.alert_text",
    ),
    "service": ("streamdrift.service",),
    "wiring": (
        "streamdrift.transports",
        "streamdrift.subscriber",
        "streamdrift.routing",
        "streamdrift.demo",
        "streamdrift.cli",
    ),
}
# What each layer may import, besides itself.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "foundation": frozenset(),
    "core": frozenset({"foundation"}),
    "adapters": frozenset({"foundation"}),  # the ports and errors: never the service, config or core
    "config": frozenset({"foundation", "core"}),
    "tools": frozenset({"foundation", "core", "config"}),
    "service": frozenset({"foundation", "core", "config"}),  # the ports, never an adapter
    "wiring": frozenset({"foundation", "core", "adapters", "config", "tools", "service"}),
}


def unit_of(name: str) -> str | None:
    """The layer-map entry a module belongs to: its top-level package or module under streamdrift."""
    parts = name.split(".")
    if parts[0] != "streamdrift":
        return None
    return ".".join(parts[:2]) if len(parts) > 1 else "streamdrift"


def layer_of(name: str) -> str | None:
    unit = unit_of(name)
    return next((layer for layer, units in LAYERS.items() if unit in units), None)


def test_the_scan_sees_imports() -> None:
    """Guard against a scan that finds nothing and so passes everything."""
    assert len(source_files("core")) >= 6
    assert "river.drift" in imports_of(PACKAGE / "core" / "detectors.py")
    assert "streamdrift.core.detectors" in imports_of(PACKAGE / "core" / "monitor.py")
    assert "streamdrift.ports" in imports_of(PACKAGE / "service" / "runner.py")


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(rel(path) for path in source_files() if layer_of(module_name(path)) is None)
    assert unplaced == [], "place these in LAYERS (docs/ARCHITECTURE.md §1)"


def test_every_import_goes_down_the_layers() -> None:
    offenders: dict[str, list[str]] = {}
    for path in source_files():
        layer = layer_of(module_name(path))
        assert layer is not None
        allowed = MAY_IMPORT[layer] | {layer}
        wrong = sorted(
            n for n in imports_of(path) if (other := layer_of(n)) is not None and other not in allowed
        )
        if wrong:
            offenders[rel(path)] = wrong
    assert offenders == {}


def test_the_packages_form_no_cycle() -> None:
    """Between the units of the layer map (e.g. demo and cli, service and config): no cycle, even within a
    layer."""
    graph: dict[str, set[str]] = {}
    for path in source_files():
        unit = unit_of(module_name(path))
        assert unit is not None
        targets = {unit_of(n) for n in imports_of(path)} - {unit, None, "streamdrift"}
        graph.setdefault(unit, set()).update(t for t in targets if t is not None)
    visiting: list[str] = []
    done: set[str] = set()

    def visit(unit: str) -> None:
        assert unit not in visiting, f"import cycle: {' -> '.join([*visiting[visiting.index(unit) :], unit])}"
        if unit in done:
            return
        visiting.append(unit)
        for target in sorted(graph.get(unit, ())):
            visit(target)
        visiting.pop()
        done.add(unit)

    for unit in sorted(graph):
        visit(unit)
    assert {"streamdrift.cli", "streamdrift.demo", "streamdrift.service"} <= set(graph)


def test_core_imports_only_core_and_errors_of_streamdrift() -> None:
    for path in source_files("core"):
        ours = {name for name in imports_of(path) if is_within(name, "streamdrift")}
        allowed = {n for n in ours if is_within(n, "streamdrift.core") or is_within(n, "streamdrift.errors")}
        assert ours == allowed, rel(path)


def test_core_has_no_clock_threads_or_io() -> None:
    forbidden = ("threading", "time", "socket", "asyncio", "subprocess", "os")
    for path in source_files("core"):
        found = sorted(n for n in imports_of(path) if any(is_within(n, f) for f in forbidden))
        assert found == [], rel(path)


def test_river_is_imported_only_by_the_detector_module() -> None:
    assert importers_of("river") == {"streamdrift/core/detectors.py"}


def test_each_client_library_is_imported_only_by_its_adapter() -> None:
    kafka_python = importers_of("kafka")
    assert kafka_python and all(path.startswith("streamdrift/kafka/") for path in kafka_python)
    librdkafka = importers_of("confluent_kafka")
    assert librdkafka and all(path.startswith("streamdrift/confluent/") for path in librdkafka)
    # The service talks to Kafka through the ports only; the wiring picks the adapter.
    assert importers_of("streamdrift.kafka") | importers_of("streamdrift.confluent") <= {
        *(rel(p) for p in source_files("kafka")),
        *(rel(p) for p in source_files("confluent")),
        "streamdrift/transports.py",
    }


def test_no_any_outside_the_adapters_in_the_service() -> None:
    """The service is typed against the ports: no `Any` in it (the adapters confine the libraries' own)."""
    for path in source_files("service"):
        assert "typing.Any" not in imports_of(path), rel(path)


def test_importing_the_core_loads_neither_kafka_nor_the_service() -> None:
    code = (
        "import sys, streamdrift.core.monitor, streamdrift.replay; "
        "print(sorted(m for m in sys.modules if m == 'kafka' or m.startswith(('kafka.', 'confluent_kafka', "
        "'streamdrift.service', 'streamdrift.kafka', 'streamdrift.confluent', 'streamdrift.cli'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
