"""Every ``nnunet25d …`` and ``nnUNetv2_…`` command line in README.md and docs/ parses with the real parsers (its
subcommand and flags exist), so the documents cannot drift from the code."""
from __future__ import annotations

import argparse
import re
import shlex
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from nnunet_25d.cli import build_parser, called_command

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)


def command_lines(text: str) -> list[str]:
    """The command lines of a Markdown text's fenced blocks (``\\`` continuations joined, a leading ``$ `` off)."""
    lines = []
    for block in FENCE.findall(text):
        joined = re.sub(r"\s*\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith(("nnunet25d ", "nnUNetv2_")):
                lines.append(line)
    return lines


DOCUMENTED = [(path.relative_to(ROOT).as_posix(), line) for path in DOCUMENTS for line in
              command_lines(path.read_text())]


class Parsed(Exception):
    """Raised in place of running an nnU-Net command once its arguments parsed."""


def parse_nnunet(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    script = next(iter(entry_points(group="console_scripts", name=argv[0])), None)
    assert script is not None, f"{argv[0]} is not an nnU-Net command"
    original = argparse.ArgumentParser.parse_known_args

    def parse_then_stop(self, args=None, namespace=None):
        _, leftover = original(self, args, namespace)
        if leftover:
            self.error(f"unrecognized arguments: {' '.join(leftover)}")
        raise Parsed

    # parse_args calls parse_known_args; some nnU-Net commands call parse_known_args themselves
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(Parsed):
        script.load()()


def shell_words(line: str) -> list[str]:
    words = shlex.split(line, comments=True)
    return words[:next((i for i, word in enumerate(words) if word in {"|", "&&", ";", ">", "2>&1"}), len(words))]


def test_the_documents_hold_commands_to_check():
    assert len(DOCUMENTED) >= 20
    assert {line.split()[0] for _, line in DOCUMENTED} >= {"nnunet25d", "nnUNetv2_train", "nnUNetv2_predict",
                                                           "nnUNetv2_plan_and_preprocess"}


@pytest.mark.parametrize("document, line", DOCUMENTED)
def test_a_documented_command_parses(document, line, monkeypatch):
    assert "<" not in line and "..." not in line and "…" not in line, f"{document}: a placeholder in {line!r}"
    argv = shell_words(line)
    if argv[0] == "nnunet25d":
        try:
            build_parser(called_command(argv[1:])).parse_args(argv[1:])
        except SystemExit as exit_:
            pytest.fail(f"{document}: `{line}` does not parse (exit {exit_.code})")
    else:
        parse_nnunet(argv, monkeypatch)


def test_the_parse_check_rejects_a_flag_that_does_not_exist(monkeypatch):
    with pytest.raises(SystemExit):
        build_parser("predict").parse_args(["predict", "-i", "a", "-o", "b", "-d", "1", "--no-such-flag"])
    with pytest.raises(SystemExit):
        parse_nnunet(["nnUNetv2_train", "501", "2d", "0", "--no-such-flag"], monkeypatch)
    parse_nnunet(["nnUNetv2_train", "501", "2d", "0", "-tr", "nnUNetTrainer25D", "-device", "cpu"], monkeypatch)


def test_command_lines_are_read_from_fenced_blocks_only():
    text = "nnunet25d outside\n```bash\n$ nnunet25d env\nnnUNetv2_train 1 2d 0 \\\n  -device cpu\npip x\n```\n"
    assert command_lines(text) == ["nnunet25d env", "nnUNetv2_train 1 2d 0 -device cpu"]
