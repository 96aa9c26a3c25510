"""tools/need.sh, which `make` runs for what the broker and the tests need beyond Python (Java, Maven, kcat,
chromium): nothing to do when the command exists; when its package cannot be installed, one line naming
the command that installs it, and exit 1 (make stops at once)."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "need.sh"


def need(command: str, package: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), command, package], capture_output=True, text=True, timeout=300, check=False
    )


def test_a_command_that_exists_needs_nothing() -> None:
    result = need("bash", "bash")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_a_package_that_cannot_be_installed_is_one_line_with_the_fix() -> None:
    result = need("streamdrift-no-such-command", "streamdrift-no-such-package")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "make: could not install streamdrift-no-such-package "
        "(run: apt-get install streamdrift-no-such-package, as root)"
    )
