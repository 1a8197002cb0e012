"""Simple baselines on synthetic AVE (calibration of the generator), CPU, a few minutes.

    python -m examples.ave.data.baselines --epochs 5 [--features vgg19] [--difficulty 1.0]

Axis legend: N videos, T=10 segments, S=N*T segments, C visual channels, A=128 audio, K=29 classes.

Per-segment models predicting the 29-way segment label: majority class, audio-only MLP,
visual-only MLP (spatial average of the 7x7 map), audio+visual MLP (concatenation), one
temporal-context baseline (audio+visual concatenated with the video's mean over time), and an
audio-guided spatial attention baseline (AGVA-like pooling of the 49 cells, then the MLP), without
and with the same temporal context. Features
are extracted once (the generator is deterministic per sample, so every epoch would see the same
bytes), then the MLPs train on the cached per-segment features (the attention baseline reads the
full maps through a DataLoader). Model selection on val; test is
reported at the best-val epoch. Also reports the generator's per-sample time.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from torch.utils.data import DataLoader

from . import BACKGROUND, NUM_CLASSES, build_datasets
from .synthetic import SyntheticAVEGenerator


def extract(ds, workers: int = 0, batch: int = 64):
    """Per-video features: audio (N, T, A), spatially averaged visual (N, T, C), labels (N, T)."""
    auds, viss, labs = [], [], []
    for vis, aud, seg, _ in DataLoader(ds, batch_size=batch, num_workers=workers):
        viss.append(vis.mean(dim=(2, 3)))
        auds.append(aud)
        labs.append(seg)
    return torch.cat(auds), torch.cat(viss), torch.cat(labs)


def _inputs(kind: str, aud: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    """(N, T, F) inputs of a baseline."""
    if kind == "audio":
        return aud
    if kind == "visual":
        return vis
    av = torch.cat([aud, vis], -1)
    if kind == "audio+visual":
        return av
    if kind == "audio+visual+context":
        return torch.cat([av, av.mean(1, keepdim=True).expand_as(av)], -1)
    raise ValueError(kind)


def train_mlp(x_tr, y_tr, evals: dict, epochs: int, seed: int = 0, hidden: int = 256, lr: float = 1e-3):
    """Per-segment MLP; returns {split: accuracy at the best-val epoch}, best epoch."""
    torch.manual_seed(seed)
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-5
    net = nn.Sequential(nn.Linear(x_tr.shape[1], hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, NUM_CLASSES))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    xs = (x_tr - mu) / sd
    best, best_ep = None, -1
    for ep in range(epochs):
        net.train()
        perm = torch.randperm(len(xs))
        for i in range(0, len(xs), 256):
            j = perm[i : i + 256]
            loss = nn.functional.cross_entropy(net(xs[j]), y_tr[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            acc = {k: (net((x - mu) / sd).argmax(-1) == y).float().mean().item() for k, (x, y) in evals.items()}
        if best is None or acc["val"] > best["val"]:
            best, best_ep = acc, ep + 1
    return best, best_ep


class AudioGuidedAttention(nn.Module):
    """Per segment: softmax over the 49 cells of w^T tanh(W_v v_i + W_a a) (AGVA-like), the
    attended cell mixture concatenated with the audio, then the same MLP head as the others."""

    def __init__(
        self, c: int, mu: torch.Tensor, sd: torch.Tensor, hidden: int = 256, k: int = 64, context: bool = False
    ):
        super().__init__()
        self.context = context  # also feed the video's mean over time of (audio, attended visual)
        self.register_buffer("mu", mu)  # (A + C,) input standardization (audio, pooled visual)
        self.register_buffer("sd", sd)
        self.a_dim = mu.shape[0] - c
        self.wv, self.wa, self.w = nn.Linear(c, k), nn.Linear(self.a_dim, k), nn.Linear(k, 1)
        f = mu.shape[0] * (2 if context else 1)
        self.head = nn.Sequential(nn.Linear(f, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, NUM_CLASSES))

    def forward(self, vis: torch.Tensor, aud: torch.Tensor) -> torch.Tensor:
        # vis (B, T, H, W, C) -> (B, T, P, C); aud (B, T, A) -> logits (B, T, K)
        v = vis.flatten(2, 3)
        a = (aud - self.mu[: self.a_dim]) / self.sd[: self.a_dim]
        vs = v / self.sd[self.a_dim :]
        z = self.w(torch.tanh(self.wv(vs) + self.wa(a)[:, :, None])).squeeze(-1)  # (B, T, P)
        pooled = (z.softmax(-1)[..., None] * v).sum(2)  # (B, T, C)
        x = (torch.cat([aud, pooled], -1) - self.mu) / self.sd
        if self.context:
            x = torch.cat([x, x.mean(1, keepdim=True).expand_as(x)], -1)
        return self.head(x)


def train_attention(splits, mu, sd, epochs: int, workers: int, seed: int = 0, lr: float = 1e-3, context: bool = False):
    """Audio-guided attention baseline, trained on full 7x7 maps generated on the fly."""
    torch.manual_seed(seed)
    c = splits["train"][0][0].shape[-1]
    net = AudioGuidedAttention(c, mu, sd, context=context)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    best, best_ep = None, -1
    for ep in range(epochs):
        net.train()
        for vis, aud, seg, _ in DataLoader(
            splits["train"], batch_size=32, shuffle=True, num_workers=workers, generator=gen
        ):
            loss = nn.functional.cross_entropy(net(vis, aud).flatten(0, 1), seg.flatten())
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        acc = {}
        with torch.no_grad():
            for k in ("val", "test"):
                hit = n = 0
                for vis, aud, seg, _ in DataLoader(splits[k], batch_size=64, num_workers=workers):
                    hit += (net(vis, aud).argmax(-1) == seg).sum().item()
                    n += seg.numel()
                acc[k] = hit / n
        if best is None or acc["val"] > best["val"]:
            best, best_ep = acc, ep + 1
    return best, best_ep


def time_generation(features: str, n: int = 300, seed: int = 0) -> float:
    """CPU seconds per generated sample (this process, one thread), after a warm-up."""
    g = SyntheticAVEGenerator(seed=seed, features=features)
    for i in range(20):
        g.sample(i)
    t0 = time.process_time()
    for i in range(n):
        g.sample((i * 13) % g.meta.num_samples)
    return (time.process_time() - t0) / n


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--features", default="vgg19", choices=["vgg19", "resnet151"])
    p.add_argument("--seed", type=int, default=0, help="generator seed")
    p.add_argument("--difficulty", type=float, default=None)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers for feature extraction")
    p.add_argument("--train-seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is fastest on a busy 2-core box)")
    p.add_argument("--no-attention", action="store_true", help="skip the audio-guided attention baseline")
    p.add_argument("--no-timing", action="store_true", help="skip the generation-time measurement")


def main(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    t0 = time.time()
    splits = build_datasets("synthetic", "supervised", args.features, seed=args.seed, difficulty=args.difficulty)
    feats = {k: extract(ds, args.workers) for k, ds in splits.items()}
    print(f"extracted features in {time.time() - t0:.1f}s")
    y = {k: f[2].reshape(-1) for k, f in feats.items()}
    rows = []
    counts = torch.bincount(y["train"], minlength=NUM_CLASSES)
    maj = int(counts.argmax())
    rows.append(
        (
            "majority (" + ("background" if maj == BACKGROUND else f"class {maj}") + ")",
            {k: (y[k] == maj).float().mean().item() for k in ("val", "test")},
            0,
        )
    )
    for kind in ("audio", "visual", "audio+visual", "audio+visual+context"):
        x = {k: _inputs(kind, f[0], f[1]).reshape(len(y[k]), -1) for k, f in feats.items()}
        evals = {k: (x[k], y[k]) for k in ("val", "test")}
        acc, ep = train_mlp(x["train"], y["train"], evals, args.epochs, seed=args.train_seed)
        rows.append((kind + " MLP", acc, ep))
    if not args.no_attention:
        x = torch.cat([feats["train"][0], feats["train"][1]], -1).flatten(0, 1)
        for context in (False, True):
            t1 = time.time()
            acc, ep = train_attention(
                splits, x.mean(0), x.std(0) + 1e-5, args.epochs, args.workers, args.train_seed, context=context
            )
            name = "audio+visual, audio-guided attention over the 49 cells" + (" + context" if context else "")
            rows.append((name + " MLP", acc, ep))
            print(f"{name}: trained in {time.time() - t1:.1f}s")
    d = "default (1.0)" if args.difficulty is None else f"{args.difficulty:g}"
    print(f"\nsynthetic AVE, features={args.features}, seed={args.seed}, difficulty={d}, epochs={args.epochs}")
    print("| baseline | val acc (%) | test acc (%) | best epoch |\n| --- | --- | --- | --- |")
    for name, acc, ep in rows:
        print(f"| {name} | {100 * acc['val']:.1f} | {100 * acc['test']:.1f} | {ep or '-'} |")
    for f in () if args.no_timing else ("vgg19", "resnet151"):
        print(f"generation: {1e3 * time_generation(f):.3f} ms CPU per {f} sample (one core)")
    print(f"total {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    raise SystemExit(main(parser.parse_args()))
