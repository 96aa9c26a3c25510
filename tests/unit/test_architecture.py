"""Import direction (docs/ARCHITECTURE.md §1): the core is pure; River and kafka-python each live behind one
boundary.

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


def test_the_scan_sees_imports() -> None:
    """Guard against a scan that finds nothing and so passes everything."""
    assert len(source_files("core")) >= 6
    assert "river.drift" in imports_of(PACKAGE / "core" / "detectors.py")
    assert "streamdrift.core.detectors" in imports_of(PACKAGE / "core" / "monitor.py")


def test_core_imports_no_kafka_service_adapter_or_cli() -> None:
    forbidden = ("kafka", "streamdrift.service", "streamdrift.kafka", "streamdrift.cli", "streamdrift.config")
    offenders = {
        rel(path): sorted(name for name in imports_of(path) if any(is_within(name, f) for f in forbidden))
        for path in source_files("core")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


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


def test_kafka_python_is_imported_only_by_the_adapter() -> None:
    # Only the adapter package imports kafka-python: its clients, and the batch reader its consumers use.
    assert importers_of("kafka") == {"streamdrift/kafka/clients.py", "streamdrift/kafka/batches.py"}
    # The run loop and `alerts tail` talk to the broker, and they do it through the adapter.
    assert {"streamdrift/service/runner.py", "streamdrift/cli/tail.py"} <= importers_of("streamdrift.kafka")


def test_adapters_and_service_never_import_the_cli() -> None:
    for under in ("kafka", "service", "config", "core"):
        for path in source_files(under):
            assert not any(is_within(n, "streamdrift.cli") for n in imports_of(path)), rel(path)


def test_importing_the_core_loads_neither_kafka_nor_the_service() -> None:
    code = (
        "import sys, streamdrift.core.monitor, streamdrift.replay; "
        "print(sorted(m for m in sys.modules if m == 'kafka' or m.startswith(('kafka.', "
        "'streamdrift.service', 'streamdrift.kafka', 'streamdrift.cli'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
