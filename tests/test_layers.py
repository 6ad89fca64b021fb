"""The architecture as the README states it: pure modules load no web stack, serving loads no
extra, and the README's module list is the package's. (`lint-imports` checks every import
edge against the contracts in pyproject.toml.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import clientkeys

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(clientkeys.__file__).parent
WEB_STACK = {"connexion", "flask", "starlette", "jsonschema_rs"}
EXTRAS = {"schemathesis", "aiohttp", "rstr", "openapi_schema_validator", "pytest", "hypothesis"}


def loaded_after(code: str) -> set[str]:
    """The top-level modules a fresh interpreter has loaded after running `code`."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", probe], capture_output=True, text=True, check=True
    )
    return {name.split(".")[0] for name in json.loads(result.stdout.splitlines()[-1])}


@pytest.mark.parametrize("module", ["pagination", "repository", "serializers", "domain", "errors"])
def test_pure_modules_load_no_web_stack(module: str) -> None:
    assert loaded_after(f"import clientkeys.{module}") & WEB_STACK == set()


def test_building_and_serving_the_api_loads_no_extra(tmp_path: Path) -> None:
    code = (
        "import clientkeys.cli\nfrom clientkeys.app import create_app\n"
        "from clientkeys.config import Settings\n"
        f"create_app(Settings(database={str(tmp_path / 'x.db')!r}))"
    )
    assert loaded_after(code) & EXTRAS == set()


def test_the_readme_lists_every_module_of_the_package() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^  ([a-z_]+(?:\.py|/))", section, re.M))
    modules = {p.name for p in PACKAGE.glob("*.py")} | {
        f"{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").exists()
    }
    assert listed == modules - {"__init__.py", "__main__.py"}


def test_the_readme_layers_are_the_import_contract() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("Dependencies point one way", 1)[1].split("```")[1]
    layers = [line.split(", ") for line in block.strip().splitlines()]
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [contract] = [c for c in config["contracts"] if c["type"] == "layers"]
    declared = [layer.split(" | ") for layer in contract["layers"] if layer != "__main__"]
    assert layers == declared
