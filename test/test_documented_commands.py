"""Every command the README and docs/ show is one that exists, with flags that parse.

Extracted from README.md and docs/*.md (code blocks and inline code): each `ami-ros …` line is
parsed by the CLI's own argparse parser (`ami_ros.cli.build_parser`), each `ros2 launch ami_ros
<file> name:=value …` is checked against the launch file's declared arguments (and those of the
files of this package it includes), each `ros2 run ami_ros <executable>` against the console
scripts, each `python -m ami_ros.<module>` against the package's modules, and each `make …`
against the Makefile's targets and variables. Nothing is run.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from ami_ros.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
STARTS = re.compile(
    r"(?<![\w./-])(ami-ros|ros2 launch ami_ros|ros2 run ami_ros|python3? -m ami_ros\.[\w.]+|make)(?=\s|$)"
)
ENDS = re.compile(r"\s(?:&&|\|\||;|\||&|#)(?:\s|$)|[;&|)]\s*$")
PLACEHOLDER = re.compile(r"\.\.\.|…|<[^>]*>|\bTODO")


@dataclass(frozen=True)
class Command:
    page: str
    line: int
    text: str
    complete: bool  # from a code block: every required argument is given

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.text}"


def _commands_in(text: str, page: str, line: int, complete: bool) -> list[Command]:
    found = []
    for match in STARTS.finditer(text):
        rest = text[match.start() :]
        end = ENDS.search(rest, len(match.group(0)))
        command = rest[: end.start() if end else len(rest)].strip().rstrip("`")
        found.append(Command(page, line, command, complete))
    return found


def _inline(paragraph: str, page: str, line: int) -> list[Command]:
    """Commands in a prose paragraph's code spans (a span may wrap onto the next line)."""
    spans = re.findall(r"`([^`]+)`", " ".join(paragraph.split()))
    return [c for span in spans for c in _commands_in(span, page, line, complete=False)]


def documented_commands() -> list[Command]:
    commands = []
    for path in PAGES:
        page, in_block, pending = path.relative_to(ROOT).as_posix(), False, ""
        paragraph, start = "", 0
        for number, raw in enumerate([*path.read_text().splitlines(), ""], 1):
            if raw.lstrip().startswith("```") or (not in_block and not raw.strip()):
                commands += _inline(paragraph, page, start)
                paragraph = ""
                if raw.lstrip().startswith("```"):
                    in_block, pending = not in_block, ""
                continue
            if in_block:
                line = pending + raw
                if line.rstrip().endswith("\\"):  # a continued command
                    pending = line.rstrip()[:-1] + " "
                    continue
                pending = ""
                code, _, comment = line.partition(" #")
                commands += _commands_in(code, page, number, complete=True)
                commands += _commands_in(comment, page, number, complete=False)
            else:
                paragraph, start = (paragraph + "\n" + raw, start) if paragraph else (raw, number)
    return commands


COMMANDS = documented_commands()


def _words(command: Command) -> list[str]:
    return [w for w in shlex.split(command.text) if not w.startswith("$(")]


# ----------------------------------------------------------------------------- ami-ros
def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def check_ami_ros(command: Command, args: list[str]) -> None:
    parser = build_parser()
    verbs = _subparsers(parser)
    if not args:
        return
    assert args[0] in verbs, f"{command}: `ami-ros {args[0]}` is not a verb ({', '.join(verbs)})"
    sub = verbs[args[0]]
    for word in args[1:]:
        flag = word.split("=")[0]
        if flag.startswith("--"):
            assert flag in sub._option_string_actions, f"{command}: `ami-ros {args[0]}` has no {flag}"
    if command.complete and not PLACEHOLDER.search(command.text):
        with contextlib.redirect_stderr(io.StringIO()) as err:
            try:
                parser.parse_args(args)
            except SystemExit:
                pytest.fail(f"{command}: does not parse: {err.getvalue().strip().splitlines()[-1]}")


# ----------------------------------------------------------------------------- ros2 launch / run
def launch_arguments(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """Arguments `launch/<name>` declares, with those of this package's launch files it includes."""
    path = ROOT / "launch" / name
    tree = ast.parse(path.read_text())
    declared = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument":
            declared.add(ast.literal_eval(node.args[0]))
        elif isinstance(node, ast.Constant) and str(node.value).endswith(".launch.py"):
            included = str(node.value)
            if (ROOT / "launch" / included).exists() and included != name and included not in seen:
                declared |= launch_arguments(included, seen | {name})
    return declared


def check_ros2_launch(command: Command, args: list[str]) -> None:
    assert args, f"{command}: no launch file"
    name = args[0]
    assert (ROOT / "launch" / name).exists(), f"{command}: launch/{name} does not exist"
    declared = launch_arguments(name)
    for word in args[1:]:
        if ":=" in word:
            key = word.split(":=")[0]
            assert key in declared, f"{command}: {name} declares no argument {key!r} ({sorted(declared)})"


def console_scripts() -> set[str]:
    return set(re.findall(r'"([\w-]+) = [\w.]+:\w+"', (ROOT / "setup.py").read_text()))


def check_ros2_run(command: Command, args: list[str]) -> None:
    assert args and args[0] in console_scripts(), f"{command}: not an executable of ami_ros"


def check_python_module(command: Command, module: str) -> None:
    path = ROOT / module.replace(".", "/")
    assert path.with_suffix(".py").exists() or (path / "__main__.py").exists(), f"{command}: no module"


# ----------------------------------------------------------------------------- make
def makefile() -> tuple[set[str], set[str]]:
    text = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):(?!=)", text, re.M))
    variables = set(re.findall(r"^([A-Z_]+)\s*[?:]?=", text, re.M))
    return targets, variables


def check_make(command: Command, args: list[str]) -> None:
    targets, variables = makefile()
    for word in args:
        if "=" in word:
            assert word.split("=")[0] in variables, f"{command}: the Makefile has no variable {word}"
        elif not word.startswith("-"):
            assert word in targets, f"{command}: the Makefile has no target {word!r}"


# ----------------------------------------------------------------------------- the tests
def test_the_pages_show_commands_of_every_kind():
    kinds = {" ".join(c.text.split()[: 2 if c.text.startswith("ros2") else 1]) for c in COMMANDS}
    assert {"ami-ros", "make", "ros2 launch", "ros2 run"} <= kinds, kinds
    readme = [c for c in COMMANDS if c.page == "README.md"]
    assert any(c.text == "make demo" for c in readme) and any(c.text == "make test" for c in readme)


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_documented_command_exists_and_its_flags_parse(command):
    words = _words(command)
    if command.text.startswith("ami-ros"):
        check_ami_ros(command, words[1:])
    elif command.text.startswith("ros2 launch"):
        check_ros2_launch(command, words[3:])
    elif command.text.startswith("ros2 run"):
        check_ros2_run(command, words[3:])
    elif command.text.startswith("python"):
        check_python_module(command, words[2])
    else:
        check_make(command, words[1:])


def test_the_checks_catch_what_does_not_exist():
    """The checks fail on a wrong verb, flag, launch argument and target (they can fail)."""
    bad = [
        ("ami-ros fly", check_ami_ros),
        ("ami-ros eval --no-such-flag", check_ami_ros),
        ("ami-ros eval --task jump", check_ami_ros),
        ("ros2 launch ami_ros sim.launch.py no_such_arg:=1", check_ros2_launch),
        ("make no-such-target", check_make),
    ]
    for text, check in bad:
        command = Command("test", 0, text, complete=True)
        words = _words(command)
        args = words[3:] if text.startswith("ros2") else words[1:]
        with pytest.raises((AssertionError, pytest.fail.Exception)):
            check(command, args)
