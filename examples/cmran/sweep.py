"""Run the ablation families (and, with --only, the AVEL and PSP models) over seeds and tabulate mean
and spread (docs/cmran.md, Results).

    python -m examples.cmran.sweep --setting supervised --seeds 0,1,2 --epochs 5 --out runs/models \
        --only full,avel,avel_dmrn,psp

    python -m examples.cmran.sweep --setting supervised --seeds 0,1,2 --epochs 5 --out runs/sweep \
        [--only full,no_cmra] [--jobs 2] [--report] [-- extra train options]

Each run is ``python -m examples.cmran train`` in its own directory
(``OUT/SETTING/NAME/seedK``); a run whose ``result.json`` exists is skipped, so a sweep can be
stopped and restarted. ``--jobs J`` runs J trainings at once with ``OMP_NUM_THREADS`` = cores / J.
``--report`` trains nothing and tabulates the finished runs (a family with no run is left out).
Writes ``OUT/SETTING/summary.md`` and ``summary.json``.
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

# name -> (train options, the paper's VGG-19 accuracy: supervised, weak; None = not published)
FAMILIES: dict[str, tuple[list[str], tuple[float | None, float | None]]] = {
    "full": ([], (77.4, 72.9)),
    "no_cmra": (["--cmra", "none"], (76.07, 72.03)),
    "self_attention": (["--cmra", "self"], (76.42, 72.46)),
    "co_attention": (["--cmra", "co"], (76.64, 72.24)),
    "cmra_f": (["--cmra", "feature_concat"], (75.62, 71.67)),
    "no_agsca": (["--visual-attention", "average"], (76.24, 72.16)),
    "agva": (["--visual-attention", "agva"], (76.95, 72.34)),
    "no_av_interaction": (["--interaction", "none"], (77.09, 72.61)),
    "self_interaction": (["--interaction", "self"], (77.29, 72.64)),
    # ITR depth L (the full model is L = 2), Table 5, supervised only
    "itr_L0": (["--itr-layers", "0"], (76.73, None)),
    "itr_L1": (["--itr-layers", "1"], (77.09, None)),
    "itr_L3": (["--itr-layers", "3"], (76.86, None)),
    "itr_L4": (["--itr-layers", "4"], (76.67, None)),
    # baselines built from the same parts (Tian et al. ECCV 2018's supervised numbers)
    "audio_only": (["--arch", "audio_only"], (59.5, None)),
    "visual_only": (["--arch", "visual_only"], (55.3, None)),
    "audio_visual": (["--arch", "audio_visual"], (71.4, None)),
    "audio_visual_agva": (["--arch", "audio_visual_agva"], (72.7, None)),
}
# The other models on the same pipeline (docs/avel.md, docs/psp.md), each with its own recipe; a sweep
# runs them only when --only names them. Paper numbers: Tian et al. ECCV 2018, Zhou et al. CVPR 2021.
MODEL_FAMILIES: dict[str, tuple[list[str], tuple[float | None, float | None]]] = {
    "avel": (["--model", "avel"], (72.7, 66.7)),
    "avel_dmrn": (["--model", "avel-dmrn"], (73.1, None)),
    "psp": (["--model", "psp"], (77.8, 73.5)),
    # AVEL's other rows: no reference code, reconstructions from the same parts
    "avel_a": (["--model", "avel", "--avel-variant", "a"], (59.5, 53.4)),
    "avel_v": (["--model", "avel", "--avel-variant", "v"], (55.3, 52.9)),
    "avel_v_att": (["--model", "avel", "--avel-variant", "v_att"], (58.6, 55.6)),
    "avel_av": (["--model", "avel", "--avel-variant", "av"], (71.4, 63.7)),
}
WEAK_UNAVAILABLE = ("avel_dmrn",)  # the reference trains DMRN supervised only
ALL_FAMILIES = {**FAMILIES, **MODEL_FAMILIES}



def run_one(name: str, seed: int, args: argparse.Namespace, threads: int) -> dict | None:
    out = Path(args.out) / args.setting / name / f"seed{seed}"
    result = out / "result.json"
    if not result.exists():
        out.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "examples.cmran", "train", "--setting", args.setting, "--data", args.data,
               "--epochs", str(args.epochs), "--seed", str(seed), "--out", str(out), "--overwrite",
               *ALL_FAMILIES[name][0], *args.extra]
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
        paper = ALL_FAMILIES[name][1][col]
        rows.append(f"| {name} | {' '.join(ALL_FAMILIES[name][0]) or '(defaults)'} | {statistics.mean(accs):.2f} "
                    f"| {spread:.2f} | {len(accs)} | {'n/a' if paper is None else f'{paper:.2f}'} |")
    head = (f"{args.setting}, data={args.data}, {args.epochs} epochs, extra options: {' '.join(args.extra) or 'none'}\n\n"
            "| family | options | test acc % (mean) | std | seeds | paper (VGG-19) |\n| --- | --- | --- | --- | --- | --- |\n")
    table = head + "\n".join(rows) + "\n"
    base = Path(args.out) / args.setting
    for fname, text in (("summary.md", table), ("summary.json", json.dumps(data, indent=2))):
        tmp = base / (fname + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, base / fname)
    return table


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description="CMRAN ablation sweep")
    p.add_argument("--setting", choices=("supervised", "weak"), default="supervised")
    p.add_argument("--data", default="synthetic")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--only", default=",".join(FAMILIES),
                   help=f"comma-separated families (default: CMRAN's); also {', '.join(MODEL_FAMILIES)}")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", default="runs/sweep")
    p.add_argument("--report", action="store_true", help="train nothing: tabulate the runs that have a result.json")
    args = p.parse_args(argv)
    args.extra = extra
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in ALL_FAMILIES]
    if unknown:
        p.error(f"--only: unknown families {unknown}; choose from {list(ALL_FAMILIES)}")
    if args.setting == "weak" and any(n in WEAK_UNAVAILABLE for n in names):
        p.error(f"--only: {[n for n in names if n in WEAK_UNAVAILABLE]} have no weak setting")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        p.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    if args.epochs < 1 or args.jobs < 1 or not seeds:
        p.error("--epochs and --jobs must be >= 1 and --seeds non-empty")
    if not args.report:
        threads = max(1, (os.cpu_count() or 1) // args.jobs)
        jobs = [(n, s) for s in seeds for n in names]  # seed-major: a cut-short sweep covers every family
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda job: run_one(*job, args, threads), jobs))
    (Path(args.out) / args.setting).mkdir(parents=True, exist_ok=True)
    print(summarize(args, names, seeds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
