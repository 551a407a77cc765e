"""The table of what the AWS stand-ins really execute (docs/aws.md, moved there from the README)
names, on every row, tests that exist: a renamed or deleted test makes its row claim a proof
that is gone."""

from __future__ import annotations

import ast
import re

from helpers import ROOT

PAGE = ROOT / "docs" / "aws.md"
TABLE_HEADING = "## What is tested here, and by what"


def _rows() -> list[list[str]]:
    text = PAGE.read_text()
    section = text[text.index(TABLE_HEADING) :].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    header, *rows = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]
    assert header[-1] == "proved by", header
    return rows


def _defined() -> tuple[set[str], set[str]]:
    """Test function and test class names, and test module paths, under tests/."""
    names, modules = set(), set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        modules.add(str(path.relative_to(ROOT)))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name.startswith(("test_", "Test")):
                names.add(node.name)
    return names, modules


def test_every_row_names_tests_that_exist() -> None:
    names, modules = _defined()
    rows = _rows()
    assert len(rows) >= 9
    for row in rows:
        cited = re.findall(r"`([^`]*)`", row[-1])
        tests = [c.split("::")[-1] for c in cited if re.fullmatch(r"test_\w+|Test\w+", c.split("::")[-1])]
        assert tests, f"the row {row[0]!r} names no test"
        for test in tests:
            assert test in names, f"the row {row[0]!r} names {test!r}, which no test module defines"
        for module in (c.split("::")[0] for c in cited if c.startswith("tests/")):
            assert module in modules, f"the row {row[0]!r} names {module!r}, which does not exist"
