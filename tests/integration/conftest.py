"""Fixtures for the integration tests: every test here is marked `kafka` by tests/conftest.py."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def kcat_path() -> str:
    """The kcat binary (librdkafka's CLI), an independent Kafka client; its absence fails, never skips."""
    path = shutil.which("kcat")
    if path is None:
        pytest.fail(
            "kcat is not on PATH; the interoperability tests need it: run `make tools` "
            "(or `apt-get install kcat`)"
        )
    return path
