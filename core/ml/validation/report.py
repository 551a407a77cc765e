"""The Markdown report of a week's validation, for a human: what failed and what to do next."""

from __future__ import annotations

from typing import Any

from core.ml.validation.outcome import ValidationOutcome

# The failure recorded for a file that could not be parsed at all.
UNREADABLE = "unreadable"


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _rerun(week: str, source: str) -> str:
    return (
        f"fix the source data (`{source}`), then re-run `ingest_data` and `validate_data` for week "
        f"{week} (a run with the Param `week={week}`)."
    )


def render_validation_report(week: str, outcome: ValidationOutcome, source: str) -> str:
    """Return a Markdown report of a week's validation, for a human.

    Args:
        week: the ISO week validated.
        outcome: what :func:`~core.ml.validation.week.validate_week` found.
        source: where the raw data came from (a path or URI).

    Returns:
        The report: a headline saying whether the batch was accepted, tables naming each failed
        expectation (GE expectation type, column, rows and sample ids) and what to do next.
    """
    n_bad = outcome.n_bad_rows
    failures = [*outcome.batch_failures, *outcome.row_failures]
    if not outcome.passed:
        headline = f"# Week {week}: batch REJECTED (quarantined whole)"
    elif n_bad:
        headline = f"# Week {week}: batch accepted, {n_bad} rows quarantined"
    else:
        headline = f"# Week {week}: batch accepted, all rows passed"
    share = f" ({n_bad / outcome.n_rows:.2%})" if outcome.n_rows else ""
    limit = f", limit {outcome.max_bad_row_fraction:.1%}" if outcome.max_bad_row_fraction is not None else ""
    lines = [
        headline,
        "",
        f"- Source: `{source}`",
        f"- Rows: {outcome.n_rows}; rows failing a row-level check: {n_bad}{share}{limit}",
        f"- Checks evaluated: {outcome.n_expectations}; batch-level failures: "
        f"{len(outcome.batch_failures)}; row-level failures: {len(outcome.row_failures)}",
        "",
    ]
    if outcome.batch_failures:
        lines += [
            "## Why the whole batch was rejected",
            "",
            "| Expectation | Column | Detail |",
            "| --- | --- | --- |",
        ]
        for failure in outcome.batch_failures:
            lines.append(
                f"| `{_cell(failure['expectation'])}` | {_cell(failure.get('column') or '(table)')} "
                f"| {_cell(failure.get('detail'))} |"
            )
        lines.append("")
    if outcome.row_failures:
        title = "Rows failing row-level checks" + (" (quarantined)" if outcome.passed else "")
        lines += [
            f"## {title}",
            "",
            "| Expectation | Column | Rows | Sample ids | Detail |",
            "| --- | --- | ---: | --- | --- |",
        ]
        for failure in outcome.row_failures:
            samples = ", ".join(failure.get("sample_ids", []))
            lines.append(
                f"| `{_cell(failure['expectation'])}` | {_cell(failure.get('column'))} "
                f"| {failure.get('n_rows')} | {_cell(samples)} | {_cell(failure.get('detail'))} |"
            )
        lines.append("")
    own = sorted({f["expectation"] for f in failures if not f["expectation"].startswith("expect_")})
    if own:
        names = ", ".join(f"`{name}`" for name in own)
        lines += [f"({names}: this project's own checks, done in pandas, not GE expectations.)", ""]
    lines += ["## What to do", ""]
    if not outcome.passed:
        lines.append(
            f"None of the {outcome.n_rows} rows of {week} go on to training or scoring: "
            + _rerun(week, source)
        )
        if any(f["expectation"] == "expect_table_columns_to_match_set" for f in outcome.batch_failures):
            lines += [
                "",
                "The columns differ from the dataset spec. If the data is right, fix the expected "
                "columns in the dataset spec instead (`[dataset]` of the settings, or the file its "
                f"`spec` names: label, id_column, event_time_column, features, ignore), then re-run "
                f"`validate_data` for week {week}: it validates the stored data again with the new spec.",
            ]
    elif n_bad:
        lines.append(
            f"The other {outcome.n_rows - n_bad} rows go on; the {n_bad} quarantined rows are kept aside. "
            "To use them too, " + _rerun(week, source)
        )
    else:
        lines.append("Nothing to do.")
    return "\n".join(lines) + "\n"


def render_unreadable_report(week: str, reason: str, source: str) -> str:
    """Return a Markdown report for a week whose raw file could not be read at all.

    Args:
        week: the ISO week.
        reason: :attr:`BatchUnreadable.reason`.
        source: where the raw data came from (a path or URI).

    Returns:
        The report: the headline, the reason and what to do next.
    """
    return "\n".join(
        [
            f"# Week {week}: batch REJECTED (file unreadable, quarantined whole)",
            "",
            f"- Source: `{source}`",
            "",
            "| Expectation | Column | Detail |",
            "| --- | --- | --- |",
            f"| `{UNREADABLE}` | (file) | {_cell(reason)} |",
            "",
            "No expectation could run: the file could not be parsed.",
            "",
            "## What to do",
            "",
            "Make the file readable: " + _rerun(week, source),
            "",
        ]
    )
