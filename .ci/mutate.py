"""`make mutate`: mutmut over the modules where a bug is silent, one module at a time.

Each module named in `.ci/mutation.toml` is mutated in a scratch copy of the checkout (nothing
is written into the tree) and tested by its own selection of the suite; mutmut runs, per
mutant, only the selected tests that reach the mutated function. The script prints each
module's score and its surviving mutants as diffs, and exits 1 when a module scores below its
floor. Survivors judged equivalent (no behaviour can tell them apart from the original) are
listed in that file with the reason, matched by function and changed line, and leave the
score's denominator; a listed equivalent that no longer survives is reported, so the list
stays true.

mutmut tries a mutant only on the tests that called its function while it recorded which
test calls what. Code that runs once for many tests (the app is built once per test module,
and with it `auth.verifier`'s closure) is charged to the one test that happened to build it,
so each survivor is tried again here, applied to the scratch copy, on the module's whole
selection; one a test kills then counts as killed ("killed on re-check"). A module with
`recheck = false` skips that (its score can then only be too low, never too high).

A mutant whose tests run out of time counts as killed (mutmut's "timeout": a loop the tests
would hang on). mutmut stops them after a CPU-time limit and after half of it in wall time,
so on a busy machine a slow test can time out too: a timed-out mutant that is a listed
equivalent is left out as one (never counted as killed), and the report names the functions
of the others, to be tried again on a quiet machine when their number looks high.

    .venv/bin/python .ci/mutate.py [MODULE ...]     # default: every module in the file
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".ci" / "mutation.toml"
COPIED = ("src", "tests", "spec", "pyproject.toml")
KILLED = {"killed", "timeout", "caught by type check", "killed on re-check"}
"""The statuses that mean a test (or a timeout) told the mutant apart."""
RECHECK_SECONDS = 600
_NAME = re.compile(r"^(?P<module>[\w.]+)\.x(?:ǁ(?P<cls>\w+)ǁ|_)(?P<fn>\w+?)__mutmut_\d+$")


@dataclass(frozen=True)
class Equivalent:
    """Surviving mutants judged equivalent: their function, the line before, and after (one
    line, or several mutants of the same line)."""

    function: str
    original: str
    mutated: str | tuple[str, ...]
    reason: str

    @property
    def variants(self) -> tuple[str, ...]:
        return (self.mutated,) if isinstance(self.mutated, str) else self.mutated


SQL_CASE = Equivalent(
    "*", "", (), "SQLite and PostgreSQL read keywords and unquoted names in any letter case"
)
"""The equivalents a module with `sql_case = true` takes without listing them: see sql_case."""
_SQL_WORD = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|FROM|JOIN|WHERE|AND|ORDER BY|VALUES|ASC|DESC)\b"
)
_SQL_TEXT = re.compile(r"'[^']*'")
_SELECTED = re.compile(r"\bselect\b(.*?)(\bfrom\b|$)", re.IGNORECASE)
_ALIAS = re.compile(r"\bas\s+(\w+)", re.IGNORECASE)


@dataclass
class Module:
    """One module's mutation run: what to mutate, with which tests, and its floor."""

    name: str
    files: list[str]
    tests: list[str]
    floor: float
    equivalent: list[Equivalent] = field(default_factory=list)
    sql_case: bool = False
    recheck: bool = True


@dataclass
class Outcome:
    """A module's result: status per mutant, the survivors' diffs, the equivalents found."""

    module: Module
    statuses: dict[str, str]
    diffs: dict[str, list[str]]
    equivalent: dict[str, tuple[Equivalent, str]]
    """Survivor -> the listed equivalent and variant it is."""
    seconds: float

    @property
    def counted(self) -> int:
        return len(self.statuses) - len(self.equivalent)

    @property
    def killed(self) -> int:
        return sum(
            status in KILLED and name not in self.equivalent
            for name, status in self.statuses.items()
        )

    @property
    def score(self) -> float:
        return 100.0 * self.killed / self.counted if self.counted else 100.0

    @property
    def survivors(self) -> list[str]:
        return [
            name
            for name, status in self.statuses.items()
            if status not in KILLED and name not in self.equivalent
        ]


def load_modules(path: Path) -> list[Module]:
    """The modules of `.ci/mutation.toml`, in file order."""
    data = tomllib.loads(path.read_text())
    modules = []
    for name, entry in data["modules"].items():
        equivalents = [
            Equivalent(**{**item, "mutated": tuple(item["mutated"])})
            if isinstance(item["mutated"], list)
            else Equivalent(**item)
            for item in entry.get("equivalent", [])
        ]
        modules.append(
            Module(
                name,
                entry["files"],
                entry["tests"],
                float(entry["floor"]),
                equivalents,
                sql_case=entry.get("sql_case", False),
                recheck=entry.get("recheck", True),
            )  # fmt: skip
        )
    return modules


def function_of(mutant: str) -> str:
    """`clientkeys.core.pagination.x_fetch_page__mutmut_3` -> `fetch_page` (`Cursor.__str__`)."""
    match = _NAME.match(mutant)
    if match is None:
        return mutant
    return f"{match['cls']}.{match['fn']}" if match["cls"] else match["fn"]


def changed_lines(diff: str) -> list[str]:
    """The removed and added lines of a unified diff, without their sign or indentation."""
    return [
        line[1:].strip()
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def listed_as(equivalent: Equivalent, mutant: str, lines: list[str]) -> str | None:
    """The listed variant a survivor is (same function, same line before and after), or None."""
    if function_of(mutant) != equivalent.function:
        return None
    original = equivalent.original.strip()
    for mutated in equivalent.variants:
        if lines == [original, mutated.strip()][: len(lines)]:
            return mutated
    return None


def sql_case(lines: list[str]) -> bool:
    """Whether a mutant only changes the letter case of SQL keywords, tables or columns it
    reads or writes: not of a quoted value ('user'), a selected column or an alias, which name
    what comes back."""
    if len(lines) != 2 or lines[0] == lines[1] or lines[0].lower() != lines[1].lower():
        return False
    before, after = lines
    if not _SQL_WORD.search(before):
        return False
    if _SQL_TEXT.findall(before) != _SQL_TEXT.findall(after):
        return False
    selected = [m.group(1) if (m := _SELECTED.search(line)) else "" for line in lines]
    as_upper = [re.sub(r"\bas\b", "AS", names, flags=re.IGNORECASE) for names in selected]
    return as_upper[0] == as_upper[1] and _ALIAS.findall(before) == _ALIAS.findall(after)


def scratch_copy(module: Module, folder: Path) -> None:
    """The checkout's code, tests and spec in `folder`, set up for mutmut on `module` alone."""
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", ".hypothesis", "*.egg-info")
            shutil.copytree(source, folder / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(source, folder / name)
    config = (folder / "pyproject.toml").read_text()
    config += f"only_mutate = {module.files!r}\n"
    config += f"pytest_add_cli_args_test_selection = {module.tests!r}\n"
    (folder / "pyproject.toml").write_text(config)
    mutmut = tomllib.loads(config)["tool"]["mutmut"]
    assert mutmut["only_mutate"] == module.files, "[tool.mutmut] must be pyproject's last table"
    # mutmut copies files, not links: the package's link to the spec is made by hand.
    package = folder / "mutants" / "src" / "clientkeys"
    package.mkdir(parents=True)
    (package / "spec").symlink_to(Path("..", "..", "spec"))


def mutmut(folder: Path, *args: str) -> str:
    """Run mutmut in `folder`; its output, or exit with it on failure."""
    command = [sys.executable, "-m", "mutmut", *args]
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"mutmut {' '.join(args)} failed:\n{result.stdout[-4000:]}{result.stderr}")
    return result.stdout


SHOW = """
import json, sys
from mutmut.mutation.diff_apply import get_diff_for_mutant
print(json.dumps({name: get_diff_for_mutant(name) for name in json.load(sys.stdin)}))
"""
"""`mutmut show` for many mutants in one process (one `mutmut show` each takes a second)."""


def show(folder: Path, mutants: list[str]) -> dict[str, str]:
    """Each mutant's unified diff against the original function."""
    command = [sys.executable, "-c", SHOW]
    result = subprocess.run(command, cwd=folder, input=json.dumps(mutants), capture_output=True,
                            text=True, check=False)  # fmt: skip
    if result.returncode != 0:
        sys.exit(f"reading the mutants' diffs failed:\n{result.stderr[-4000:]}")
    diffs: dict[str, str] = json.loads(result.stdout)
    return diffs


def killed_by_whole_selection(module: Module, folder: Path, mutant: str) -> bool:
    """Apply the mutant to the scratch copy's source, run every selected test, undo it."""
    sources = {path: (folder / path).read_text() for path in module.files}
    mutmut(folder, "apply", mutant)
    try:
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                   "-p", "no:xdist", "-p", "no:randomly", *module.tests]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(folder / "src")}
        try:
            result = subprocess.run(
                command, cwd=folder, env=env, capture_output=True, timeout=RECHECK_SECONDS
            )
        except subprocess.TimeoutExpired:
            return True
        return result.returncode not in (0, 5)
    finally:
        for path, text in sources.items():
            (folder / path).write_text(text)


def run_module(module: Module, children: int) -> Outcome:
    """Mutate one module in a scratch copy and collect every mutant's status."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"clientkeys-mutate-{module.name}-") as name:
        folder = Path(name)
        scratch_copy(module, folder)
        mutmut(folder, "run", "--max-children", str(children))
        statuses = {}
        for line in mutmut(folder, "results", "--all", "true").splitlines():
            mutant, _, status = line.strip().rpartition(": ")
            if mutant:
                statuses[mutant] = status
        unkilled = [mutant for mutant, status in statuses.items() if status not in KILLED]
        timed_out = [mutant for mutant, status in statuses.items() if status == "timeout"]
        diffs = {
            mutant: changed_lines(diff)
            for mutant, diff in show(folder, unkilled + timed_out).items()
        }
        equivalent = equivalents(module, diffs)
        for mutant in timed_out:
            if mutant not in equivalent:
                del diffs[mutant]
        for mutant in list(diffs) if module.recheck else []:
            if mutant not in equivalent and killed_by_whole_selection(module, folder, mutant):
                statuses[mutant] = "killed on re-check"
                del diffs[mutant]
    return Outcome(module, statuses, diffs, equivalent, time.monotonic() - started)


def equivalents(module: Module, diffs: dict[str, list[str]]) -> dict[str, tuple[Equivalent, str]]:
    """The survivors that are listed equivalents (or SQL letter case, where the module says)."""
    found = {}
    for mutant, lines in diffs.items():
        for candidate in module.equivalent:
            variant = listed_as(candidate, mutant, lines)
            if variant is not None:
                found[mutant] = (candidate, variant)
        if mutant not in found and module.sql_case and sql_case(lines):
            found[mutant] = (SQL_CASE, lines[1])
    return found


def report(outcome: Outcome) -> bool:
    """Print a module's score and survivors; whether it meets its floor."""
    module = outcome.module
    ok = outcome.score >= module.floor
    tally = Counter(outcome.statuses.values())
    print(
        f"\n{module.name}: {outcome.score:.1f}% ({outcome.killed} killed of {outcome.counted}; "
        f"{len(outcome.equivalent)} equivalent left out; floor {module.floor:g}%) "
        f"in {outcome.seconds:.0f} s: {'ok' if ok else 'BELOW THE FLOOR'}"
    )
    print("  " + ", ".join(f"{status} {n}" for status, n in sorted(tally.items())))
    for mutant in outcome.survivors:
        print(f"  {outcome.statuses[mutant]}: {mutant}")
        lines = outcome.diffs[mutant]
        for sign, line in zip("-+", lines, strict=False):
            print(f"      {sign} {line}")
    timed_out = Counter(
        function_of(name)
        for name, status in outcome.statuses.items()
        if status == "timeout" and name not in outcome.equivalent
    )
    if timed_out:
        print(f"  timed out, counted as killed: {sum(timed_out.values())} "
              f"({', '.join(f'{fn} {n}' for fn, n in sorted(timed_out.items()))})")  # fmt: skip
    found = set(outcome.equivalent.values())
    by_rule = sum(listed is SQL_CASE for listed, _ in found)
    if by_rule:
        print(f"  {by_rule} equivalent by the SQL letter-case rule ({SQL_CASE.reason})")
    for listed in module.equivalent:
        for mutated in listed.variants:
            if (listed, mutated) not in found:
                print(f"  listed as equivalent, killed this run (check it): "
                      f"{listed.function}: {listed.original!r} -> {mutated!r}")  # fmt: skip
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="module names from .ci/mutation.toml")
    parser.add_argument("--children", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    modules = load_modules(CONFIG)
    unknown = set(args.modules) - {m.name for m in modules}
    if unknown:
        parser.error(f"unknown module(s): {', '.join(sorted(unknown))}")
    wanted = [m for m in modules if not args.modules or m.name in args.modules]
    started = time.monotonic()
    results = []
    for module in wanted:
        print(f"mutating {module.name} ({', '.join(module.files)}) ...", flush=True)
        results.append(report(run_module(module, args.children)))
    print(f"\nmake mutate: {sum(results)} of {len(results)} modules at or above their floor, "
          f"{time.monotonic() - started:.0f} s")  # fmt: skip
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
