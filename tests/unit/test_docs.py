"""The README and docs/ say only what runs: their commands, paths, names and links are checked.

Every fenced ``bash`` block (and every ``$ `` line of a ``console`` block) of README.md and
docs/*.md is read as the shell would read it, and each command is checked without running it:

- ``make <target>``: the target is one of the Makefile's; the options a ``DEMO_ARGS`` or
  ``ARGS`` variable passes are in the ``--help`` of the script the target runs;
- ``python scripts/x.py --flag`` / ``python -m module --flag``: the script or module exists and
  each ``--flag`` is in its ``--help`` (which is run: it is cheap); ``pytest -m marker``: the
  marker is declared;
- ``airflow ...``: Airflow's own CLI parser accepts the command as written (it is parsed, not
  run);
- anything else must be a tool this test knows it does not run, with the reason.

Commands that cannot run in the fast tier name the test (or the CI step) that runs them
(``RUN_BY``); the hand-typed backfill is checked to be the Makefile's ``backfill`` target with
the Makefile's environment (without the ``?timeout=60`` of its SQLite connection it fails with
``database is locked``), and its ``backfill create`` flags are the ones the real-scheduler test
passes. Every repository path and dotted name in backticks exists, every relative link between
the pages resolves (anchors included), and the README stays short.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from helpers import ROOT

README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "plugins" / "README.md"]
MAX_README_LINES = 250

# tools the docs show that this project does not run, and why
NOT_RUN_HERE = {
    "prometheus": "the user's Prometheus; its scrape file is checked by tests/unit/test_serving_metrics.py",
    "docker": "no docker on the development machine (docs/scale-out.md, docs/gcp.md say so)",
}
# shell built-ins the blocks use to set the environment
SHELL = {"export", "set", "."}
# make targets that the fast tier cannot run, and what runs them: a test module (which must
# name the target) or a reason
RUN_BY = {
    "setup": "every other target runs it first",
    "demo": "tests/e2e/test_first_day.py",
    "test": ".ci/run",
    "test-fast": "the same pytest as make test, on three of its folders",
    "lint": ".ci/run",
    "typecheck": ".ci/run",
    "airflow": "tests/e2e/test_first_day.py",
    "airflow-demo": "tests/e2e/test_first_day.py",
    "serve-stop": "tests/e2e/test_first_day.py",
    "serve": "not run by a test; the server it runs (apps.serving.app) by tests/unit/test_local_endpoint.py",
    "backfill": "test_the_hand_typed_backfill_is_make_backfill (here); its backfill create: "
    "tests/e2e/test_backfill_scheduler.py",
    "cluster-up": "tests/e2e/test_distributed_profile.py",
    "cluster-down": "tests/e2e/test_distributed_profile.py",
    "dataset": "tests/unit/test_spec_draft.py (the module the target runs, through its command line)",
    "bench": "tests/benchmarks/test_bench_smoke.py",
    "lock": "not run by the suite: it resolves requirements.in against PyPI",
    "bqemulator": ".ci/run (a prerequisite of make test)",
    "azurite": ".ci/run (a prerequisite of make test)",
    "browser": ".ci/run (a prerequisite of make test)",
    "redis": ".ci/run (a prerequisite of make test)",
    "training-pool": "make setup and make airflow run it",
}
# what a runner of RUN_BY names when it runs the target's command rather than the target
RUNS_AS = {"cluster-down": "scripts/cluster.py down"}
# the script each make variable's options go to
MAKE_ARGS = {("demo", "DEMO_ARGS"): "scripts/run_weeks.py", ("bench", "ARGS"): "tests/benchmarks/run.py"}
# repository paths the docs name that exist only once something ran
MADE_AT_RUN_TIME = {"tests/artifacts/browser/"}
PATH_ROOTS = (
    "core",
    "demo",
    "providers",
    "lifecycle",
    "apps",
    "dags",
    "plugins",
    "scripts",
    "tests",
    "monitoring",
    "docs",
)
# modules the docs show a cloud's container running: they live in the code bundle, not at the root
CONTAINER_MODULES = {"vertex_train": "providers/gcp/vertex_train.py"}
PACKAGES = ("core", "demo", "providers", "lifecycle", "apps")


def _text(page: Path) -> str:
    return page.read_text()


def _blocks(page: Path) -> Iterator[tuple[str, str]]:
    """(language, body) of each fenced block of ``page``."""
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", _text(page), re.S | re.M):
        yield match.group(1), match.group(2)


def _logical_lines(body: str) -> Iterator[str]:
    """The shell's lines of a block: continuations joined, a quote left open carried on."""
    pending = ""
    for line in body.replace("\\\n", " ").splitlines():
        pending = f"{pending}\n{line}" if pending else line
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # an open quote: the command goes on on the next line
            continue
        yield pending
        pending = ""
    assert not pending, f"an unclosed quote in {body!r}"


def _commands(line: str) -> Iterator[list[str]]:
    """The simple commands of one line: split at ; && || |, up to a comment or a redirection."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True  # "#" starts a comment, also inside a word (none of ours has one)
    command: list[str] = []
    skip = False
    for token in lexer:
        if token.startswith("#"):
            break
        if token in (";", "&&", "||", "|"):
            if command:
                yield command
            command, skip = [], False
        elif token in (">", ">>", "<", "2>"):
            skip = True  # the redirection's target is no argument
        elif not skip:
            command.append(token)
    if command:
        yield command


def _fenced_commands() -> list[tuple[str, list[str]]]:
    """(page, command) of every command in a bash block or after ``$ `` in a console block."""
    found = []
    for page in PAGES:
        for language, body in _blocks(page):
            if language == "bash":
                lines = list(_logical_lines(body))
            elif language == "console":
                lines = [line[2:] for line in body.splitlines() if line.startswith("$ ")]
            else:
                continue
            for line in lines:
                found += [(page.name, command) for command in _commands(line)]
    return found


def _inline_commands() -> list[tuple[str, list[str]]]:
    """Commands in backticks in the prose: ``make x``, ``python -m x``, ``python x.py``, ``pytest``.

    (An ``airflow`` command in the prose is often a name, ``airflow backfill create``, not a
    command line: those are checked in the blocks only.)"""
    found = []
    for page in PAGES:
        prose = re.sub(r"^```.*?^```", "", _text(page), flags=re.S | re.M)
        for span in re.findall(r"`([^`\n]+)`", prose):
            if re.match(
                r"(\w+=\S+ )*(make (-\w+ )*[a-z]|(\.venv/bin/)?python (-m \w|\S+\.py)|pytest )", span
            ) and not re.search(r"<|\.\.\.|…", span):
                with contextlib.suppress(ValueError):
                    found += [(page.name, command) for command in _commands(span)]
    return found


def _program(command: list[str]) -> tuple[str, list[str]]:
    """The program and its arguments, past leading ``NAME=value`` assignments."""
    words = list(command)
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0], re.S):
        words.pop(0)
    return (words[0], words[1:]) if words else ("", [])


@cache
def _makefile() -> str:
    return (ROOT / "Makefile").read_text()


@cache
def _targets() -> frozenset[str]:
    return frozenset(re.findall(r"^([a-z][\w-]*):(?!=)", _makefile(), re.M))


@cache
def _help(*program: str) -> str:
    """The ``--help`` of a script or module, run with the project's interpreter."""
    result = subprocess.run(
        [sys.executable, *program, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{' '.join(program)} --help failed:\n{result.stderr[-2000:]}"
    return result.stdout


def _flags(args: list[str]) -> list[str]:
    return [arg.split("=", 1)[0] for arg in args if arg.startswith("--")]


def _offers(usage: str, flag: str) -> bool:
    """True when ``usage`` lists ``flag`` itself (``--drift`` is not ``--drift-from-week``)."""
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", usage) is not None


def _make_targets(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The targets and the ``NAME=value`` variables of a ``make`` command line."""
    targets, variables = [], {}
    for arg in args:
        if re.match(r"[A-Z_]+=", arg):
            name, value = arg.split("=", 1)
            variables[name] = value
        elif not arg.startswith("-"):
            targets.append(arg)
    return targets, variables


ALL_COMMANDS = _fenced_commands() + _inline_commands()


def test_the_readme_is_short() -> None:
    lines = len(_text(README).splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines: move the detail to a page of docs/"


def test_the_pages_have_commands_to_check() -> None:
    programs = {_program(command)[0] for _, command in ALL_COMMANDS}
    assert {"make", ".venv/bin/airflow", ".venv/bin/python"} <= programs, programs


def test_every_command_is_one_this_test_checks() -> None:
    known = {
        "make",
        "python",
        ".venv/bin/python",
        "pytest",
        "airflow",
        ".venv/bin/airflow",
        *SHELL,
        *NOT_RUN_HERE,
    }
    unknown = {
        (page, " ".join(command)) for page, command in ALL_COMMANDS if _program(command)[0] not in known
    }
    assert not unknown, f"commands in the docs that no check covers (add one here): {sorted(unknown)}"


def test_every_make_target_exists_and_says_what_runs_it() -> None:
    for page, command in ALL_COMMANDS:
        program, args = _program(command)
        if program != "make":
            continue
        targets, _ = _make_targets(args)
        assert targets, f"{page}: `{' '.join(command)}` names no target"
        for target in targets:
            assert target in _targets(), (
                f"{page}: `{' '.join(command)}`: the Makefile has no target {target!r}"
            )
            assert target in RUN_BY, f"{page}: say in RUN_BY which test runs `make {target}`"
    for target, runner in RUN_BY.items():
        assert target in _targets(), f"RUN_BY names {target!r}, which the Makefile lacks"
        if re.fullmatch(r"[\w./-]+", runner):  # a file that runs it
            named = RUNS_AS.get(target, target)
            assert named in (ROOT / runner).read_text(), (
                f"{runner} is said to run make {target}: it does not name {named!r}"
            )


def test_make_variables_pass_options_the_script_has() -> None:
    checked = 0
    for page, command in ALL_COMMANDS:
        program, args = _program(command)
        if program != "make":
            continue
        targets, variables = _make_targets(args)
        for name, value in variables.items():
            script = MAKE_ARGS.get((targets[0], name))
            if script is None:
                continue
            assert f"{script} $({name})" in _makefile(), (
                f"make {targets[0]} no longer runs {script} $({name})"
            )
            usage = _help(script)
            for flag in _flags(shlex.split(value)):
                assert _offers(usage, flag), f"{page}: `{' '.join(command)}`: {script} has no option {flag}"
            checked += 1
    assert checked >= 3


def test_every_python_command_names_a_script_or_module_and_its_options() -> None:
    checked = 0
    for page, command in ALL_COMMANDS:
        program, args = _program(command)
        if program == "pytest":
            program, args = "python", ["-m", "pytest", *args]
        if program not in ("python", ".venv/bin/python"):
            continue
        if args[:2] == ["-m", "pytest"]:
            options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
            markers = options["markers"]
            for marker in [b for a, b in zip(args, args[1:], strict=False) if a == "-m"][1:]:
                assert any(m.split(":")[0] == marker for m in markers), f"{page}: no pytest marker {marker!r}"
            continue
        if args[0] == "-m" and args[1] in CONTAINER_MODULES:
            assert (ROOT / CONTAINER_MODULES[args[1]]).is_file(), f"{page}: no {CONTAINER_MODULES[args[1]]}"
            continue
        if args[0] == "-m":
            module, rest = args[1], args[2:]
            path = ROOT.joinpath(*module.split("."))
            assert path.with_suffix(".py").exists() or (path / "__main__.py").exists(), (
                f"{page}: no module {module}"
            )
            usage = _help("-m", module)
        else:
            script, rest = args[0], args[1:]
            assert (ROOT / script).is_file(), f"{page}: `{' '.join(command)}`: no script {script}"
            usage = _help(script)
        for flag in _flags(rest):
            assert _offers(usage, flag), f"{page}: `{' '.join(command)}`: no option {flag} in its --help"
        checked += 1
    assert checked >= 3


def test_every_airflow_command_is_accepted_by_airflows_parser() -> None:
    from airflow.cli.cli_parser import get_parser

    parser = get_parser()
    checked = 0
    for page, command in ALL_COMMANDS:
        program, args = _program(command)
        if program not in ("airflow", ".venv/bin/airflow"):
            continue
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            try:
                parser.parse_args(args)
            except SystemExit as exit:
                refusal = errors.getvalue()[-800:]
                pytest.fail(f"{page}: `{' '.join(command)}` is refused by airflow ({exit.code}): {refusal}")
        checked += 1
    assert checked >= 4


def _exports(body: str) -> dict[str, str]:
    values = {}
    for line in _logical_lines(body):
        for command in _commands(line):
            if command[0] == "export":
                values.update(word.split("=", 1) for word in command[1:])
    return values


def _makefile_exports() -> dict[str, str]:
    return {
        name: value.strip() for name, value in re.findall(r"^export (\w+) \??:?= (.*)$", _makefile(), re.M)
    }


def _recipe(target: str) -> list[str]:
    section = _makefile().split(f"\n{target}:", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in section.splitlines()[1:] if line.startswith("\t")]


def test_the_hand_typed_backfill_is_make_backfill() -> None:
    """docs/dags.md's backfill by hand: the Makefile's environment and its backfill target's
    commands, with the dates of the ``make backfill`` line beside it."""
    page = ROOT / "docs" / "dags.md"
    [body] = [body for language, body in _blocks(page) if language == "bash" and "backfill create" in body]
    exports = _exports(body)
    makefile = _makefile_exports()
    home = exports["AIRFLOW_HOME"]
    for name in ("AIRFLOW_HOME", "PYTHONPATH", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__PLUGINS_FOLDER",
                 "AIRFLOW__CORE__LOAD_EXAMPLES", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):  # fmt: skip
        expected = makefile[name].replace("$(CURDIR)", "$PWD").replace("$(AIRFLOW_HOME)", home)
        assert exports.get(name) == expected, (
            f"docs/dags.md exports {name}={exports.get(name)!r}, the Makefile {expected!r}"
        )
    assert "?timeout=60" in exports["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    typed = [" ".join(c) for line in _logical_lines(body) for c in _commands(line) if c[0] != "export"]
    [make_line] = {
        " ".join(c) for name, c in _fenced_commands() if name == page.name and c[:2] == ["make", "backfill"]
    }
    variables = _make_targets(shlex.split(make_line)[1:])[1]
    recipe = [
        line.replace("$(BIN)", ".venv/bin")
        .replace("$(FROM)", variables["FROM"])
        .replace("$(TO)", variables["TO"])
        for line in _recipe("backfill")
    ]
    assert typed == recipe, f"docs/dags.md types {typed}, make backfill runs {recipe}"


def test_the_backfill_flags_are_the_ones_the_real_scheduler_test_passes() -> None:
    """tests/e2e/test_backfill_scheduler.py runs ``backfill create`` (tests/airflow_services.py)
    with the flags of the docs' command, through a real scheduler."""
    harness = (ROOT / "tests" / "airflow_services.py").read_text()
    assert "scheduler_backfill" in (ROOT / "tests" / "e2e" / "test_backfill_scheduler.py").read_text()
    commands = [c for _, c in ALL_COMMANDS if "backfill" in c and "create" in c]
    assert commands
    for command in commands:
        for flag in _flags(command):
            assert f'"{flag}"' in harness, f"the scheduler test's backfill does not pass {flag}"


def _repo_paths(page: Path) -> Iterator[str]:
    for span in re.findall(r"`([^`\n]+)`", _text(page)):
        for word in span.split():
            word = word.split("::")[0].rstrip(".,;:)")
            if word.split("/")[0] in PATH_ROOTS and "/" in word and not re.search(r"[<>*{}$]|\.\.\.|…", word):
                yield word


def test_every_repository_path_in_backticks_exists() -> None:
    missing = [
        (page.name, path)
        for page in PAGES
        for path in _repo_paths(page)
        if path not in MADE_AT_RUN_TIME and not (ROOT / path).exists()
    ]
    assert not missing, f"paths the docs name that do not exist: {missing}"


@cache
def _top_level_names(path: Path) -> frozenset[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return frozenset(names)


def test_every_dotted_name_in_backticks_exists() -> None:
    """``providers.jobs.ProviderJobTrigger``, ``core.config.build_section``: the module and its name."""
    missing = []
    for page in PAGES:
        for span in set(re.findall(rf"`((?:{'|'.join(PACKAGES)})(?:\.\w+)+)`", _text(page))):
            parts = span.split(".")
            for cut in range(len(parts), 0, -1):
                base = ROOT.joinpath(*parts[:cut])
                module = base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"
                if module.exists():
                    rest = parts[cut:]
                    if rest and rest[0] not in _top_level_names(module):
                        missing.append((page.name, span))
                    break
            else:
                missing.append((page.name, span))
    assert not missing, f"dotted names the docs give that the code lacks: {missing}"


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of ``page``, and its explicit ``id`` anchors."""
    text = re.sub(r"^```.*?^```", "", _text(page), flags=re.S | re.M)
    anchors = set(re.findall(r'id="([^"]+)"', text))
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", "")).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_every_relative_link_resolves() -> None:
    broken = []
    for page in PAGES:
        text = re.sub(r"^```.*?^```", "", _text(page), flags=re.S | re.M)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append((page.name, target))
                continue
            if anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append((page.name, target))
    assert not broken, f"links that lead nowhere: {broken}"


def test_every_page_is_linked_from_the_readme() -> None:
    readme = _text(README)
    orphans = [
        page.name for page in PAGES[1:] if page.parent.name == "docs" and f"docs/{page.name}" not in readme
    ]
    assert not orphans, f"pages of docs/ the README does not lead to: {orphans}"
