"""The README stays true: two set-up commands (the second is what CI runs), and every
`clear-ray` command it shows parses with the real CLI and validates its settings."""

import re
import shlex
from pathlib import Path

import pytest

from clear_ray.cli import build_parser
from clear_ray.commands.remove import job_config

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def _commands(block: str) -> list[list[str]]:
    """Each line of a block (continuations joined) as words; `a && b` gives two commands."""
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while "&&" in words:
            commands.append(words[:words.index("&&")])
            words = words[words.index("&&") + 1:]
        if words:
            commands.append(words)
    return commands


def test_exactly_two_setup_commands_and_ci_runs_the_second():
    setup = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    blocks = _bash_blocks(setup)
    assert len(blocks) == 2
    first, second = (_commands(b) for b in blocks)
    assert first[-1][-1] == "demo" and second[-1][-1].endswith("pytest")
    ci = (REPO / ".ci" / "run").read_text()
    test_command = blocks[1].split("#")[0].strip()
    for part in test_command.split("&&"):
        assert part.strip() in ci


JOB_ENTRYPOINTS = {"jobs/remove_subtitles.py": "remove", "jobs/make_pairs.py": "make-pairs",
                   "jobs/train_stage1.py": "train-stage1", "jobs/train_stage2.py": "train-stage2"}


def _clear_ray_argv(words: list[str]) -> list[str] | None:
    while words and "=" in words[0] and not words[0].startswith("-"):
        words = words[1:]  # leading VAR=value assignments
    if words and words[0].endswith("clear-ray"):
        return words[1:]
    if words[:3] == ["ray", "job", "submit"] and "--" in words:
        entry = words[words.index("--") + 1:]
        assert entry[0] == "python" and entry[1] in JOB_ENTRYPOINTS
        assert (REPO / entry[1]).is_file()
        return [JOB_ENTRYPOINTS[entry[1]], *entry[2:]]
    return None


COMMANDS = [argv for block in _bash_blocks(README) for words in _commands(block)
            if (argv := _clear_ray_argv(words)) is not None]


def test_the_readme_shows_the_main_commands():
    shown = {argv[0] for argv in COMMANDS}
    assert {"remove", "bench", "demo"} <= shown


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(a)[:60] for a in COMMANDS])
def test_every_shown_command_parses_and_validates(argv):
    args = build_parser().parse_args(argv)
    if args.command == "remove":
        job_config(args)  # raises ConfigError on a bad value
    elif args.command == "make-pairs":
        from clear_ray.commands.make_pairs import job_config as pairs_config

        pairs_config(args)
    elif args.command == "train-stage1":
        from clear_ray.commands.train_stage1 import job_config as stage1_config

        stage1_config(args)
    elif args.command == "train-stage2":
        from clear_ray.commands.train_stage2 import job_config as stage2_config

        stage2_config(args)
