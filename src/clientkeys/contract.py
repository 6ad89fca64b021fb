"""`clientkeys check`: the spec's conformance suite (Schemathesis) against any server.

The suite runs against *our* contract, bundled into one document, not against whatever spec
the server under test serves: a server that drifted from the contract must fail.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from clientkeys import openapi

PHASES = ("examples", "coverage", "fuzzing", "stateful")

# Explicit `public`/`secret` values are unique: a generated body may repeat one already used,
# which Sentry's contract answers with a 400 field error. No schema can say "unique", so for
# create alone a 400 is not counted as "valid data rejected".
# The cache is off: a check is a verdict on one run, and Schemathesis would otherwise write
# `.schemathesis/` (crash replays) into whatever folder the command runs from.
CONFIG = """
[cache]
enabled = false

[parameters]
"path.organization_slug" = {org}
"path.project_slug" = {project}

[[operations]]
include-operation-id = "Create a New Client Key"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 401, 403, 404]
"""


def wait_for(base_url: str, seconds: float) -> bool:
    """Whether the server at `base_url` accepts connections within `seconds`."""
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=1):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)


def schemathesis_command(
    spec_file: Path,
    config_file: Path,
    base_url: str,
    token: str,
    *,
    max_examples: int,
    phases: Sequence[str],
    junit: Path | None,
    seed: int | None,
) -> list[str]:
    """The Schemathesis CLI call that runs every check against `base_url`."""
    command = [
        sys.executable, "-c", "import sys; from schemathesis.cli import schemathesis; "
        "sys.exit(schemathesis())",
        "--config-file", str(config_file), "run", str(spec_file), "--url", base_url,
        "--checks", "all", "--phases", ",".join(phases), "--max-examples", str(max_examples),
        "--header", f"Authorization: Bearer {token}", "--workers", "1",
    ]  # fmt: skip
    if seed is not None:
        command += ["--seed", str(seed)]
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        command += ["--report", "junit", "--report-junit-path", str(junit)]
    return command


def check(
    spec_file: Path,
    base_url: str,
    token: str,
    org: str,
    project: str,
    *,
    max_examples: int = 50,
    phases: Sequence[str] = PHASES,
    junit: Path | None = None,
    seed: int | None = None,
    capture: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run the suite. Schemathesis's report goes to the result's stdout, or straight to the
    terminal when `capture` is false."""
    with tempfile.TemporaryDirectory(prefix="clientkeys-check-") as folder:
        bundled = Path(folder) / "openapi.json"
        bundled.write_text(json.dumps(openapi.bundle(spec_file)))
        config = Path(folder) / "schemathesis.toml"
        config.write_text(CONFIG.format(org=json.dumps(org), project=json.dumps(project)))
        command = schemathesis_command(
            bundled, config, base_url.rstrip("/"), token, max_examples=max_examples,
            phases=phases, junit=junit, seed=seed,
        )  # fmt: skip
        env = {**os.environ, "PYTHONWARNINGS": "ignore", "NO_COLOR": "1"}
        return subprocess.run(command, capture_output=capture, text=True, env=env, check=False)
