"""The `check` command: prove that a running server keeps the contract."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from clientkeys.check import contract
from clientkeys.check.contract import AUTHORIZATION, OWN_PHASES, PHASES, REQUIREMENTS
from clientkeys.cli.options import (
    load_settings,
    require_extra,
    setting_options,
)
from clientkeys.config import CheckSettings


@click.command()
@click.argument("base_url")
@setting_options(CheckSettings, "check_token")
@click.option("--org", "organization", required=True, help="An organization slug on the server.")
@click.option("--project", required=True, help="A project slug of that organization.")
@setting_options(
    CheckSettings, "check_forbidden_token", "check_read_only_token", "check_request_timeout"
)
@click.option(
    "--max-examples",
    default=50,
    show_default=True,
    type=click.IntRange(min=1),
    help="Test cases per operation and phase.",
)
@click.option(
    "--phases",
    default=",".join(PHASES + OWN_PHASES),
    show_default=True,
    help="Comma-separated phases: Schemathesis's, then check's own (authorization by role, "
    "the effects of every write read back).",
)
@click.option(
    "--require",
    "requirements",
    default="",
    metavar="GOAL[,GOAL]",
    help=f"Exit 2 unless every operation answered each documented status of a kind "
    f"({', '.join(REQUIREMENTS)}) or a given status (e.g. 415) at least once. One documented "
    f"2xx per operation is always required. `{AUTHORIZATION}`: exit 2 unless the authorization "
    "phase tested a role token.",
)
@click.option(
    "--junit-xml",
    type=click.Path(path_type=Path),
    default=None,
    help="Write a JUnit XML report: one test case per operation and check.",
)
@click.option(
    "--json-report",
    type=click.Path(path_type=Path),
    default=None,
    help="Write a JSON report: the verdict, the phases, each operation and every failure.",
)
@click.option(
    "--har",
    type=click.Path(path_type=Path),
    default=None,
    help="Write every request and response as a HAR log.",
)
@click.option(
    "--vcr",
    type=click.Path(path_type=Path),
    default=None,
    help="Write every request and response as a VCR cassette (YAML).",
)
@click.option("--seed", type=int, default=None, help="Random seed, to replay a run.")
@click.option(
    "--spec",
    "spec_file",
    type=click.Path(path_type=Path),
    default=None,
    help="The contract to check: an OpenAPI 3.0 or 3.1 document, JSON or YAML. "
    "[default: clientkeys' own spec]",
)
@click.option(
    "--wait",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to wait for the server to accept connections.",
)
def check(
    wait: float,
    base_url: str,
    check_token: str,
    organization: str,
    project: str,
    check_forbidden_token: str | None,
    check_read_only_token: str | None,
    check_request_timeout: float,
    max_examples: int,
    phases: str,
    requirements: str,
    junit_xml: Path | None,
    json_report: Path | None,
    har: Path | None,
    vcr: Path | None,
    seed: int | None,
    spec_file: Path | None,
) -> None:
    """Check that the server at BASE_URL keeps the contract (Schemathesis, all checks).

    Runs the examples, coverage, fuzzing and stateful phases with every check against any
    server that claims to implement this API, then check's own: authorization (each role token
    given gets exactly what Sentry's rules allow, and a refused write changes nothing) and
    effects (every acknowledged write is read back). The token needs project:read,
    project:write and project:admin on ORG. Nothing is written into the working directory
    unless asked. Progress goes to stderr: one line rewritten in place on a terminal, plain
    lines elsewhere; NO_COLOR is respected.

    \b
    Exit status:
      0  the server was really exercised and kept the contract
      1  it breaks the contract, lets a role do what it may not, or loses a write
         (the report says where, with curl commands), or an operation did not answer
         within --request-timeout
      2  it could not really be tested: unreachable, token rejected, organization or
         project not found, an operation never answered a documented 2xx, or a
         --require goal not reached, a role token unknown (the last line says which);
         or check's own input is wrong (--spec, a report path), before any request
    """
    require_extra("check", "schemathesis", "aiohttp")
    from clientkeys.check import json_report as report_json
    from clientkeys.check import junit
    from clientkeys.check.progress import Progress

    options = contract.Options(
        max_examples=max_examples,
        phases=_choices(phases, PHASES + OWN_PHASES, "--phases"),
        seed=seed,
        requirements=_requirements(requirements),
        forbidden_token=check_forbidden_token,
        read_only_token=check_read_only_token,
        junit=junit_xml,
        json_report=json_report,
        har=har,
        vcr=vcr,
        request_timeout=check_request_timeout,
    )
    spec_file = spec_file or load_settings().spec_dir / "openapi.json"
    try:  # check's own input, before any request: a mistake here is exit 2 in one line
        spec = contract.load_contract(spec_file)
        contract.check_reports(options)
    except contract.InputError as exc:
        click.echo(f"clientkeys check: cannot start: {exc}", err=True)
        raise SystemExit(contract.UNTESTED) from None
    click.echo(f"Checking {base_url} against {spec_file} ({', '.join(options.phases)})", err=True)
    progress = Progress.to(sys.stderr, contract.operation_names(spec))

    def echo(line: str) -> None:
        progress.clear()
        click.echo(line)

    outcome = contract.check(spec, base_url, check_token, organization, project, options,
                             echo=echo, wait=wait, listen=progress.event)  # fmt: skip
    progress.clear()
    if outcome.seen.statuses:
        click.echo("\n".join(["", *contract.summary(outcome.seen)]))
    if outcome.seen.findings:
        click.echo("\n".join(["", "Contract violations:", *contract.findings_report(outcome.seen)]))
    if junit_xml is not None:
        junit.write(outcome, junit_xml, options.requirements)
        click.echo(f"JUnit XML report: {junit_xml}", err=True)
    if json_report is not None:
        report_json.write(outcome, json_report, base_url, options.requirements)
        click.echo(f"JSON report: {json_report}", err=True)
    verdict = outcome.verdict
    headline = {
        contract.OK: f"{base_url} keeps the contract",
        contract.BROKEN: f"{base_url} BREAKS the contract",
    }.get(verdict.code, f"could not really test {base_url}")
    click.echo(f"clientkeys check: {headline}: {verdict.cause}", err=True)
    raise SystemExit(verdict.code)


def _choices(value: str, allowed: tuple[str, ...], option: str) -> list[str]:
    """A comma-separated option value as a list, each item one of `allowed`."""
    chosen = [item.strip() for item in value.split(",") if item.strip()]
    unknown = sorted(set(chosen) - set(allowed))
    if unknown or not chosen:
        raise click.BadParameter(f"choose from {', '.join(allowed)}", param_hint=option)
    return chosen


def _requirements(value: str) -> list[str]:
    try:
        return contract.parse_requirements(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--require") from None
