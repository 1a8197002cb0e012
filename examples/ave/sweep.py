"""The ``sweep`` subcommand: train named families (CMRAN's ablations by default; the other models' entries
with --only) over seeds and tabulate mean and spread (docs/cmran.md, Results).

    python -m examples.cmran sweep --setting supervised --seeds 0,1,2 --epochs 5 --out runs/models \
        --only full,avel,avel_dmrn,psp

    python -m examples.cmran sweep --setting supervised --seeds 0,1,2 --epochs 5 --out runs/sweep \
        [--only full,no_cmra] [--jobs 2] [--report] [-- extra train options]

Each model folder lists its entries (``ModelFamily.sweep``: name -> train options, the paper's accuracy).
Each run is ``python -m examples.cmran train`` in its own directory (``OUT/SETTING/NAME/seedK``); a run
whose ``result.json`` exists is skipped, so a sweep can be stopped and restarted. ``--jobs J`` runs J
trainings at once with ``OMP_NUM_THREADS`` = cores / J. ``--report`` trains nothing and tabulates the
finished runs (a family with no run is left out). Writes ``OUT/SETTING/summary.md`` and ``summary.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import registry
from .checks import ConfigError
from .constants import SETTINGS
from .files import atomic_write


def sweep_entries() -> dict[str, tuple[list[str], tuple]]:
    """Every model folder's sweep entries: name -> (train options, the paper's accuracy: supervised, weak)."""
    return {name: entry for fam in registry.families() for name, entry in fam.sweep.items()}


def default_entries() -> list[str]:
    return list(registry.family(registry.DEFAULT_MODEL).sweep)


def entry_model(options: list[str]) -> str:
    return options[options.index("--model") + 1] if "--model" in options else registry.DEFAULT_MODEL


def run_one(name: str, seed: int, args: argparse.Namespace, threads: int) -> dict | None:
    out = Path(args.out) / args.setting / name / f"seed{seed}"
    result = out / "result.json"
    if not result.exists():
        out.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", args.module, "train", "--setting", args.setting, "--data", args.data,
               "--epochs", str(args.epochs), "--seed", str(seed), "--out", str(out), "--overwrite",
               *sweep_entries()[name][0], *args.extra]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        with open(out / "train.log", "w") as log:
            code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        if code != 0 or not result.exists():
            print(f"{name} seed {seed}: failed (exit {code}), see {out / 'train.log'}", flush=True)
            return None
    r = json.loads(result.read_text())
    print(f"{name} seed {seed}: test {100 * r['test_acc']:.2f}%", flush=True)
    return r


def summarize(args: argparse.Namespace, names: list[str], seeds: list[int]) -> str:
    col = 0 if args.setting == "supervised" else 1
    rows, data = [], {}
    for name in names:
        accs = []
        for seed in seeds:
            f = Path(args.out) / args.setting / name / f"seed{seed}" / "result.json"
            if f.exists():
                accs.append(100 * json.loads(f.read_text())["test_acc"])
        data[name] = accs
        if not accs:
            continue
        spread = statistics.stdev(accs) if len(accs) > 1 else float("nan")
        options, papers = sweep_entries()[name]
        paper = papers[col]
        rows.append(f"| {name} | {' '.join(options) or '(defaults)'} | {statistics.mean(accs):.2f} "
                    f"| {spread:.2f} | {len(accs)} | {'n/a' if paper is None else f'{paper:.2f}'} |")
    head = (f"{args.setting}, data={args.data}, {args.epochs} epochs, extra options: {' '.join(args.extra) or 'none'}\n\n"
            "| family | options | test acc % (mean) | std | seeds | paper (VGG-19) |\n| --- | --- | --- | --- | --- | --- |\n")
    table = head + "\n".join(rows) + "\n"
    base = Path(args.out) / args.setting
    for fname, text in (("summary.md", table), ("summary.json", json.dumps(data, indent=2))):
        atomic_write(base / fname, lambda f, text=text: f.write(text.encode()))
    return table


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--setting", choices=SETTINGS, default="supervised", help="the setting every run trains in")
    p.add_argument("--data", default="synthetic", help="'synthetic' or the AVE release directory")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    p.add_argument("--epochs", type=int, default=5, help="epochs of every run")
    p.add_argument("--only", default=None,
                   help=f"comma-separated entries (default: {registry.DEFAULT_MODEL}'s, "
                        f"{','.join(default_entries())}); also {', '.join(n for n in sweep_entries() if n not in default_entries())}")
    p.add_argument("--jobs", type=int, default=1, help="trainings run at once")
    p.add_argument("--out", default="runs/sweep", help="runs go to OUT/SETTING/NAME/seedK")
    p.add_argument("--report", action="store_true", help="train nothing: tabulate the runs that have a result.json")


def _check(args: argparse.Namespace) -> tuple[list[str], list[int]]:
    names = [n for n in (args.only or ",".join(default_entries())).split(",") if n]
    entries = sweep_entries()
    unknown = [n for n in names if n not in entries]
    if unknown:
        raise ConfigError(f"--only: unknown families {unknown}; choose from {list(entries)}")
    no_recipe = [n for n in names if (entry_model(entries[n][0]), args.setting) not in
                 registry.family(entry_model(entries[n][0])).recipes]
    if no_recipe:
        raise ConfigError(f"--only: {no_recipe} have no {args.setting} setting")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        raise ConfigError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    if args.epochs < 1 or args.jobs < 1 or not seeds:
        raise ConfigError("--epochs and --jobs must be >= 1 and --seeds non-empty")
    return names, seeds


def main(args: argparse.Namespace) -> int:
    names, seeds = _check(args)
    if not args.report:
        threads = max(1, (os.cpu_count() or 1) // args.jobs)
        jobs = [(n, s) for s in seeds for n in names]  # seed-major: a cut-short sweep covers every family
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda job: run_one(*job, args, threads), jobs))
    (Path(args.out) / args.setting).mkdir(parents=True, exist_ok=True)
    print(summarize(args, names, seeds))
    return 0
