"""The mock on public API descriptions: every operation called answers a documented status
with a body the documented schema accepts (checked by an independent validator)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clientkeys.config import SPEC_DIR
from clientkeys.mock.app import Report, create_mock_app
from corpus import SAMPLE, Caller, Entry, Unsatisfiable, entries

CORPUS = entries()


def test_the_corpus_covers_what_the_issue_asks() -> None:
    assert len(CORPUS) >= 20
    assert {e.openapi[:3] for e in CORPUS} == {"3.0", "3.1"}
    assert {e.operation_ids for e in CORPUS} >= {"all", "none"}
    assert any(e.invalid_examples for e in CORPUS)
    assert any(e.operations > 1000 and e.path.stat().st_size > 10_000_000 for e in CORPUS)
    assert any(e.file.endswith((".yaml", ".yml")) for e in CORPUS)


def called_operations(path: Path, app: Any, uncallable: list[str]) -> dict[str, Any]:
    """Call up to SAMPLE operations with valid requests; what is wrong with each answer."""
    caller = Caller(path)
    failures: dict[str, Any] = {}
    with app.test_client() as client:
        for operation in caller.sample(SAMPLE):
            try:
                request = caller.request(operation)
            except Unsatisfiable:
                assert operation.name in uncallable, f"{operation.name}: no valid request"
                continue
            assert operation.name not in uncallable, f"{operation.name} is callable now"
            problems = caller.problems(operation, client.request(**request))
            if problems:
                failures[operation.name] = problems
    return failures


@pytest.mark.parametrize("entry", CORPUS, ids=[e.name for e in CORPUS])
def test_every_called_operation_answers_as_documented(entry: Entry) -> None:
    report = Report()
    app = create_mock_app(entry.path, report=report)
    assert (report.operations, len(report.invalid)) == (entry.operations, entry.invalid_examples)
    assert called_operations(entry.path, app, entry.uncallable) == {}


def test_our_own_split_spec_answers_as_documented() -> None:
    """clientkeys' spec spreads over files joined by relative `$ref`s."""
    path = SPEC_DIR / "openapi.json"
    assert called_operations(path, create_mock_app(path), []) == {}
