"""The README's Python examples run as written."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["labels"].shape == (4, 10)
    assert namespace["out"].shape == (2, 10, 4, 64)


def test_readme_lists_every_exported_loss_and_metric():
    import inspect

    import avattn

    row = next(line for line in README.read_text().splitlines() if line.startswith("| training pieces |"))
    listed = set(re.findall(r"`(\w+)`", row))
    exported = {name for name in avattn.__all__ if inspect.isfunction(getattr(avattn, name))
                and getattr(avattn, name).__module__ in ("avattn.losses", "avattn.metrics")}
    assert exported and exported <= listed, sorted(exported - listed)
