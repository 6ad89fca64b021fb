"""`make mutate`: mutmut over the modules where a bug is silent, one module at a time.

Each module named in `.ci/mutation.toml` is mutated in a scratch copy of the checkout (nothing
is written into the tree) and tested by its own selection of the suite; mutmut runs, per
mutant, only the selected tests that reach the mutated function. The script prints each
module's score and its surviving mutants as diffs, and exits 1 when a module scores below its
floor. Survivors judged equivalent (no behaviour can tell them apart from the original) are
listed in that file with the reason, matched by function and kind of change (see `Change`),
never by line, and leave the score's denominator; a listed equivalent that no longer survives is
reported, so the list stays true.

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
import ast
import difflib
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".ci" / "mutation.toml"
COPIED = ("src", "tests", "spec", "pyproject.toml")
KILLED = {"killed", "timeout", "caught by type check", "killed on re-check"}
"""The statuses that mean a test (or a timeout) told the mutant apart."""
RECHECK_SECONDS = 600
_NAME = re.compile(r"^(?P<module>[\w.]+)\.x(?:ǁ(?P<cls>\w+)ǁ|_)(?P<fn>\w+?)__mutmut_\d+$")


OPERATORS = (
    "number",  # operator_number: 1 -> 2
    "string",  # operator_string: "a" -> "XXaXX"
    "string case",  # operator_string: "a" -> "A", "A" -> "a"
    "name",  # operator_name: True <-> False, deepcopy -> copy
    "argument None",  # operator_arg_removal: f(a, b) -> f(None, b)
    "argument removed",  # operator_arg_removal: f(a, b) -> f(b)
    "assignment",  # operator_assignment: a = b -> a = None, a = None -> a = ""
    "augmented assignment",  # operator_augmented_assignment: a += b -> a = b
    "not removed",  # operator_remove_unary_ops: not a -> a
    "operator",  # operator_swap_op: + -> -, < -> <=, == -> !=, and -> or
    "keyword",  # operator_keywords: is -> is not, in -> not in, break -> return
    "string method",  # operator_*_string_methods_swap: lower -> upper, split -> rsplit
    "dict keyword",  # operator_dict_arguments: dict(a=1) -> dict(aXX=1)
    "lambda",  # operator_lambda: lambda: a -> lambda: None
    "case removed",  # operator_match: a `case` dropped
    "condition",  # operator_if_exp: a if c else b -> a if (c) or True else b
    "other",
)
"""The kinds of change mutmut 3's operators (mutmut/mutation/mutators.py) make, as `Change`
names them."""


@dataclass(frozen=True)
class Change:
    """What a mutant changes, told from its function before and after as Python reads them
    (`ast`), so that no line number, line break, quote or comment enters it: the smallest piece
    of code that differs (`before`, `after`: a literal, an argument, an operator's expression),
    the kind of change, and the code around it (`around`: each enclosing expression and simple
    statement, innermost first, to tell apart two places with the same `before`)."""

    function: str
    operator: str
    before: str
    after: str
    around: tuple[str, ...]
    places: int
    """How many places in the function read `before`: more than one needs `within`."""

    def __str__(self) -> str:
        where = f" within {self.around[0]!r}" if self.places > 1 and self.around else ""
        return f"{self.function}: {self.operator}: {self.before!r} -> {self.after!r}{where}"


@dataclass(frozen=True)
class Equivalent:
    """Surviving mutants judged equivalent, keyed as `Change` describes them: the function,
    the kind(s) of change, the code changed (`node`, formatted any way; several places may
    share a reason), optionally what it became (`to`) and code around it (`within`)."""

    function: str
    operators: tuple[str, ...]
    nodes: tuple[str, ...]
    reason: str
    to: tuple[str, ...] = ()
    within: str = ""

    def matches(self, change: Change) -> bool:
        """Whether `change` is this equivalent (a `node` that stands in more than one place of
        the function matches only with a `within` that names its place)."""
        if change.function != self.function or change.operator not in self.operators:
            return False
        if change.before not in {normalized(node) for node in self.nodes}:
            return False
        if self.to and change.after not in {normalized(to) for to in self.to}:
            return False
        if self.within:
            return normalized(self.within) in change.around
        return change.places == 1

    def __str__(self) -> str:
        within = f" within {self.within!r}" if self.within else ""
        nodes = ", ".join(map(repr, self.nodes))
        return f"{self.function}: {'/'.join(self.operators)}: {nodes}{within}"


SQL_CASE = Equivalent(
    "*", (), (), "SQLite and PostgreSQL read keywords and unquoted names in any letter case"
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
    changes: dict[str, Change]
    equivalent: dict[str, Equivalent]
    """Survivor -> the listed equivalent it is."""
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
        equivalents = [equivalent(item) for item in entry.get("equivalent", [])]
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


def equivalent(item: dict[str, Any]) -> Equivalent:
    """One `[[modules.NAME.equivalent]]` table; `operator`, `node` and `to` take one value or
    a list."""
    operators, nodes, to = (
        (value,) if isinstance(value, str) else tuple(value)
        for value in (item["operator"], item["node"], item.get("to", ()))
    )
    unknown = set(operators) - set(OPERATORS)
    if unknown:
        sys.exit(f"{CONFIG}: {item['function']}: unknown operator {', '.join(sorted(unknown))}; "
                 f"choose from {', '.join(OPERATORS)}")  # fmt: skip
    return Equivalent(item["function"], operators, nodes, item["reason"], to,
                      item.get("within", ""))  # fmt: skip


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


def normalized(code: str) -> str:
    """`code` as Python's `ast.unparse` writes it (an expression, an argument, statements or a
    parameter), so that a key may be formatted any way; text that is none of these, as it is."""
    for read in (_expression, _argument, _statements, _parameters):
        try:
            return ast.unparse(read(code))
        except (SyntaxError, ValueError):
            continue
    return " ".join(code.split())


def _expression(code: str) -> ast.AST:
    return ast.parse(code.strip(), mode="eval").body


def _argument(code: str) -> ast.AST:
    call = ast.parse(f"f({code})", mode="eval").body
    assert isinstance(call, ast.Call)
    arguments: list[ast.AST] = [*call.args, *call.keywords]
    if len(arguments) != 1:
        raise ValueError("not one argument")
    return arguments[0]


def _statements(code: str) -> ast.AST:
    return ast.parse(code.strip())


def _parameters(code: str) -> ast.AST:
    function = ast.parse(f"def f({code}): pass").body[0]
    assert isinstance(function, ast.FunctionDef)
    return function.args


def change_of(function: str, before: str, after: str) -> Change:
    """What a mutant of `function` changes, from the function's source before and after."""
    original, mutated = ast.parse(before), ast.parse(after)
    old, new, path = _difference(original, mutated, [])
    if isinstance(old, ast.operator | ast.boolop | ast.cmpop | ast.unaryop) and path:
        # An operator alone says little: its expression is the place of the change.
        old, new, path = path[-1], _counterpart(path[-1], original, mutated), path[:-1]
    parent = path[-1] if path else None
    text = _code(old)
    return Change(
        function,
        _operator(old, new, parent),
        text,
        "" if new is None else _code(new),
        tuple(_code(node) for node in reversed(path) if _around(node)),
        sum(_code(node) == text for node in ast.walk(original) if type(node) is type(old)),
    )


def _difference(
    old: ast.AST, new: ast.AST, path: list[ast.AST]
) -> tuple[ast.AST, ast.AST | None, list[ast.AST]]:
    """The smallest differing pair of nodes (None for a removed item) and `old`'s ancestors."""
    if type(old) is not type(new):
        return old, new, path
    pairs: list[tuple[ast.AST, ast.AST]] = []
    for name in old._fields:
        mine, theirs = getattr(old, name, None), getattr(new, name, None)
        if isinstance(mine, list) and isinstance(theirs, list):
            if len(mine) == len(theirs) + 1:  # an argument or a case dropped
                gone = next((i for i, (a, b) in enumerate(zip(mine, theirs, strict=False))
                             if not _same(a, b)), len(theirs))  # fmt: skip
                return mine[gone], None, [*path, old]
            if len(mine) != len(theirs):
                return old, new, path
            pairs += [(a, b) for a, b in zip(mine, theirs, strict=True) if not _same(a, b)]
        elif isinstance(mine, ast.AST) and isinstance(theirs, ast.AST):
            if not _same(mine, theirs):
                pairs.append((mine, theirs))
        elif mine != theirs:
            return old, new, path
    if len(pairs) == 1 and all(isinstance(node, ast.AST) for node in pairs[0]):
        return _difference(*pairs[0], [*path, old])
    return old, new, path


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, ast.AST) and isinstance(b, ast.AST):
        return ast.dump(a) == ast.dump(b)
    return bool(a == b)


def _counterpart(node: ast.AST, original: ast.AST, mutated: ast.AST) -> ast.AST:
    """The node of `mutated` at the place `node` holds in `original`."""
    for old, new in zip(ast.walk(original), ast.walk(mutated), strict=False):
        if old is node:
            return new
    raise ValueError("no counterpart")


def _code(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except (AttributeError, ValueError):
        return type(node).__name__


def _around(node: ast.AST) -> bool:
    """Whether an ancestor names a place: an expression, an argument, a simple statement (a
    compound statement, with its body, would tie the key to all the code inside it)."""
    return not isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef) and not (
        isinstance(node, ast.stmt) and hasattr(node, "body")
    )


def _operator(old: ast.AST, new: ast.AST | None, parent: ast.AST | None) -> str:
    """The kind of change (OPERATORS) that turned `old` into `new` inside `parent`."""
    if new is None:
        return "case removed" if isinstance(parent, ast.Match) else "argument removed"
    if isinstance(parent, ast.Lambda):
        return "lambda"
    if isinstance(parent, ast.IfExp) and isinstance(new, ast.BoolOp):
        return "condition"
    if (
        isinstance(new, ast.Constant)
        and new.value in (None, "")
        and not (isinstance(old, ast.Constant) and type(old.value) is type(new.value))
    ):
        return "assignment" if isinstance(parent, ast.Assign | ast.AnnAssign) else "argument None"
    if isinstance(old, ast.Constant) and isinstance(new, ast.Constant):
        return _literal(old.value, new.value)
    if isinstance(old, ast.Name) and isinstance(new, ast.Name):
        return "name"
    if isinstance(old, ast.UnaryOp) and not isinstance(new, ast.UnaryOp):
        return "not removed"
    if isinstance(old, ast.AugAssign) and isinstance(new, ast.Assign):
        return "augmented assignment"
    if isinstance(old, ast.Compare) and isinstance(new, ast.Compare):
        keywords = (ast.Is, ast.IsNot, ast.In, ast.NotIn)
        return "keyword" if any(isinstance(op, keywords) for op in old.ops) else "operator"
    if isinstance(old, ast.BinOp | ast.BoolOp | ast.UnaryOp | ast.AugAssign):
        return "operator"
    if isinstance(old, ast.Break | ast.Continue):
        return "keyword"
    if isinstance(old, ast.Attribute) and isinstance(new, ast.Attribute):
        return "string method"
    if isinstance(old, ast.keyword) and isinstance(new, ast.keyword):
        return "dict keyword"
    return "other"


def _literal(old: Any, new: Any) -> str:
    if isinstance(old, bool) or isinstance(new, bool):
        return "name"
    if isinstance(old, str | bytes) and isinstance(new, str | bytes):
        return "string" if new[2:-2] == old and len(new) == len(old) + 4 else "string case"
    return "number"


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
import libcst
from mutmut.mutation import diff_apply as d

def functions(name):
    path = d.find_mutant(name).path
    pair = d.read_functions_from_index(name, path)
    if pair is None:
        module = d.read_mutants_module(path)
        pair = d.read_original_function(module, name), d.read_mutant_function(module, name)
    return [libcst.Module([function]).code.strip() for function in pair]

print(json.dumps({name: functions(name) for name in json.load(sys.stdin)}))
"""
"""The original and mutated function of many mutants in one process, as `mutmut show` reads
them (one `mutmut show` each takes a second)."""


def show(folder: Path, mutants: list[str]) -> dict[str, tuple[str, str]]:
    """Each mutant's function, before and after."""
    command = [sys.executable, "-c", SHOW]
    result = subprocess.run(command, cwd=folder, input=json.dumps(mutants), capture_output=True,
                            text=True, check=False)  # fmt: skip
    if result.returncode != 0:
        sys.exit(f"reading the mutants' diffs failed:\n{result.stderr[-4000:]}")
    sources: dict[str, list[str]] = json.loads(result.stdout)
    return {name: (before, after) for name, (before, after) in sources.items()}


def diff_lines(before: str, after: str) -> list[str]:
    """The removed and added lines of a mutant, without their sign or indentation."""
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="")
    return changed_lines("\n".join(diff))


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
        sources = show(folder, unkilled + timed_out)
        diffs = {mutant: diff_lines(*pair) for mutant, pair in sources.items()}
        changes = {
            mutant: change_of(function_of(mutant), *pair) for mutant, pair in sources.items()
        }
        equivalent = equivalents(module, changes, diffs)
        for mutant in timed_out:
            if mutant not in equivalent:
                del diffs[mutant]
        for mutant in list(diffs) if module.recheck else []:
            if mutant not in equivalent and killed_by_whole_selection(module, folder, mutant):
                statuses[mutant] = "killed on re-check"
                del diffs[mutant]
    return Outcome(module, statuses, diffs, changes, equivalent, time.monotonic() - started)


def equivalents(
    module: Module, changes: dict[str, Change], diffs: dict[str, list[str]]
) -> dict[str, Equivalent]:
    """The survivors that are listed equivalents (or SQL letter case, where the module says)."""
    found = {}
    for mutant, change in changes.items():
        listed = next((item for item in module.equivalent if item.matches(change)), None)
        if listed is None and module.sql_case and sql_case(diffs[mutant]):
            listed = SQL_CASE
        if listed is not None:
            found[mutant] = listed
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
        print(f"  {outcome.statuses[mutant]}: {mutant}\n      {outcome.changes[mutant]}")
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
    found = list(outcome.equivalent.values())
    by_rule = sum(listed is SQL_CASE for listed in found)
    if by_rule:
        print(f"  {by_rule} equivalent by the SQL letter-case rule ({SQL_CASE.reason})")
    for listed in module.equivalent:
        if listed not in found:
            print(f"  listed as equivalent, killed this run (check it): {listed}")
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
