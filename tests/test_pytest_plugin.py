"""The pytest plugin works for a suite outside the package, in parallel, as the README shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

USAGE = Path(__file__).parent / "plugin_usage"


def test_usage_suite_passes_in_parallel_with_its_own_servers(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "-q", "-p", "no:cacheprovider",
         "-c", os.devnull, "--rootdir", str(USAGE), "--confcutdir", str(USAGE),
         "--basetemp", str(tmp_path / "base"), str(USAGE)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    tests = len(re.findall(r"^def test_", (USAGE / "test_with_clientkeys.py").read_text(), re.M))
    assert f"{tests} passed" in result.stdout
