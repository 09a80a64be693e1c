"""A headless Chromium for browser tests: Debian's `chromium` package driven by Playwright for Python.

Playwright's own browser downloads are never used (test machines may have no internet beyond the
package mirrors): the system browser is launched by path. When it is missing it is installed with
apt-get (CI runs as root on a fresh Debian machine); when that cannot be done the test fails and says
why and how to fix it, rather than being skipped where nobody looks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser")
APT_TIMEOUT_SECONDS = 900
ROOT = Path(__file__).resolve().parents[1]


def _found() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], capture_output=True, text=True, env=env,
                          timeout=APT_TIMEOUT_SECONDS, check=False)


def _install() -> None:
    """`apt-get install chromium`, with `apt-get update` first if the package lists are stale or empty."""
    how = "install Debian's chromium package (`sudo apt-get install chromium`) or put `chromium` on PATH"
    if shutil.which("apt-get") is None:
        pytest.fail(f"the web client test needs Chromium, which is not installed, and there is no apt-get: {how}",
                    pytrace=False)
    if os.geteuid() != 0:
        pytest.fail(f"the web client test needs Chromium, which is not installed, and only root can install "
                    f"it here: {how}", pytrace=False)
    result = _apt("install", "-y", "--no-install-recommends", "chromium")
    if result.returncode != 0:
        update = _apt("update")
        result = _apt("install", "-y", "--no-install-recommends", "chromium") if update.returncode == 0 else update
    if result.returncode != 0:
        pytest.fail(f"could not install Chromium with apt-get (exit {result.returncode}): "
                    f"{(result.stderr or result.stdout).strip()[-2000:]}\n{how}", pytrace=False)


def system_chromium() -> str:
    """The path of the system Chromium, installing it first when missing."""
    path = _found()
    if path is None:
        _install()
        path = _found()
    if path is None:
        pytest.fail("apt-get installed chromium but no `chromium` is on PATH", pytrace=False)
    return path


def artifacts_dir(name: str) -> Path:
    """Where a test keeps what a person may want to look at afterwards (screenshots): under
    $PHOTODUEL_TEST_ARTIFACTS, else tests/artifacts/ (git-ignored)."""
    base = Path(os.environ.get("PHOTODUEL_TEST_ARTIFACTS") or ROOT / "tests" / "artifacts")
    path = base / name
    path.mkdir(parents=True, exist_ok=True)
    return path
