"""The architecture as ARCHITECTURE.md states it: pure packages load no web stack, serving loads no
extra, and its package map and layers are the package's. (`lint-imports` checks every import
edge against the contracts in pyproject.toml.)"""

from __future__ import annotations

import json
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


@pytest.mark.parametrize("package", ["core", "store"])
def test_pure_packages_load_no_web_stack(package: str) -> None:
    modules = [p.stem for p in (PACKAGE / package).glob("*.py") if p.stem != "__init__"]
    code = "\n".join(f"import clientkeys.{package}.{module}" for module in modules)
    assert loaded_after(code) & WEB_STACK == set()


def test_building_and_serving_the_api_loads_no_extra(tmp_path: Path) -> None:
    code = (
        "import clientkeys.cli\nfrom clientkeys.server.app import create_app\n"
        "from clientkeys.config import Settings\n"
        f"create_app(Settings(database={str(tmp_path / 'x.db')!r}))"
    )
    assert loaded_after(code) & EXTRAS == set()


def test_the_architecture_page_lists_every_module_of_the_package() -> None:
    page = (ROOT / "ARCHITECTURE.md").read_text()
    tree = page.split("src/clientkeys/\n", 1)[1].split("```", 1)[0]
    listed, folder = set(), ""
    for line in tree.splitlines():
        name = line.strip().split(" ", 1)[0]
        if line.startswith("  ") and not line.startswith("    "):
            folder = name if name.endswith("/") else ""
            listed.add(name)
        elif line.startswith("    "):
            listed.add(folder + name)
    found = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "spec" not in p.parts}
    found = {f for f in found if not f.startswith("server/handlers/")} | {"server/handlers/"}
    found |= {f"{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    found -= {f for f in found if f.endswith("/__init__.py")}
    assert listed == found


def test_the_architecture_layers_are_the_import_contract() -> None:
    page = (ROOT / "ARCHITECTURE.md").read_text()
    block = page.split("from the layers below it:", 1)[1].split("```")[1]
    layers = [line.split(" | ") for line in block.strip().splitlines()]
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [contract] = [c for c in config["contracts"] if c["type"] == "layers"]
    declared = [layer.split(" | ") for layer in contract["layers"] if layer != "__main__"]
    assert layers == declared
