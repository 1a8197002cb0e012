"""The README's Python examples run as written."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_each_readme_python_block_runs_on_its_own():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    namespaces = []
    for block in blocks:
        namespaces.append({})  # a fresh namespace: a reader pastes one block at a time
        exec(compile(block, str(README), "exec"), namespaces[-1])
    assert namespaces[0]["labels"].shape == (4, 10)
    assert namespaces[1]["out"].shape == (2, 10, 4, 64)


def test_readme_lists_every_exported_loss_and_metric():
    import inspect

    import avattn

    row = next(line for line in README.read_text().splitlines() if line.startswith("| training pieces |"))
    listed = set(re.findall(r"`(\w+)`", row))
    exported = {name for name in avattn.__all__ if inspect.isfunction(getattr(avattn, name))
                and getattr(avattn, name).__module__ in ("avattn.losses", "avattn.metrics")}
    assert exported and exported <= listed, sorted(exported - listed)


def test_make_demo_arguments_are_a_valid_train_command():
    import shlex

    from examples.ave.cli import build_parser

    makefile = (README.parent / "Makefile").read_text()
    demo = re.search(r"^DEMO_ARGS \?= (.*)$", makefile, flags=re.M).group(1)
    args = build_parser().parse_args(["train", *shlex.split(demo)])
    assert (args.data, args.setting, args.amp) == ("synthetic", "supervised", "auto")
