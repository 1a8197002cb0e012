"""A folder run: list the videos, skip those already extracted with the same settings, extract the rest (each
rank of a ``torchrun`` its shard of the sorted list), go on past a bad video, and join everything into one
release folder (rank 0) with ``writer.write_release``.
"""

from __future__ import annotations

import os
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .convention import Convention
from .errors import ConfigError, VideoError, WorkFolderError
from .labels import Event, row_labels
from .pipeline import Networks, Timer, extract_video
from .windows import windows
from .work import WORK_DIR, read_attrs, settings_differences, source_signature, work_path
from .writer import INDEX, INDEX_FORMAT, RELEASE_FILES, SPLITS, Row, Video, write_release

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi")
LIST_SUFFIXES = (".txt", ".lst")


@dataclass
class Options:
    out: Path
    convention: Convention
    settings: dict
    dtype: str = "float32"
    batch_size: int = 32
    max_pixels: int = 4096 * 2160
    split: str = "test"
    split_ratio: tuple[float, float, float] | None = None
    labels: dict[str, list[Event]] | None = None
    categories: list[str] | None = None


@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)  # video ids with a finished work file
    extracted: int = 0
    reused: int = 0
    failures: list[str] = field(default_factory=list)  # one line each, naming the file


def list_videos(paths) -> list[Path]:
    """Video files from folders (their .mp4/.mkv/.webm/.avi, not recursive), files, and lists (.txt/.lst: one
    path a line, relative to the list's folder); ConfigError for a path that does not exist."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found += sorted(f for f in p.iterdir() if f.suffix.lower() in VIDEO_SUFFIXES)
        elif p.suffix.lower() in LIST_SUFFIXES and p.is_file():
            lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]
            found += [p.parent / ln for ln in lines if ln and not ln.startswith("#")]
        elif p.exists() or p.is_symlink():
            found.append(p)
        else:
            raise ConfigError(f"--videos {os.fspath(raw)!r}: no such file or folder (expected a folder of videos, a "
                              f"video file ({', '.join(VIDEO_SUFFIXES)}) or a list of paths ({', '.join(LIST_SUFFIXES)}))")
    unique = list(dict.fromkeys(found))
    if not unique:
        raise ConfigError(f"--videos {[os.fspath(p) for p in paths]}: no video file found (looked for "
                          f"{', '.join(VIDEO_SUFFIXES)})")
    return unique


def video_ids(files: list[Path]) -> dict[str, Path]:
    """id (the file name without its suffix) -> file, sorted by id; ConfigError when two files share an id."""
    ids: dict[str, Path] = {}
    for f in files:
        if f.stem in ids:
            raise ConfigError(f"--videos: {os.fspath(ids[f.stem])!r} and {os.fspath(f)!r} have the same video id "
                              f"{f.stem!r} (the file name without its suffix): rename one")
        ids[f.stem] = f
    return dict(sorted(ids.items()))


def check_out(out: Path) -> None:
    """``out`` may hold an earlier extraction (its ``videos.json``), never someone else's release files."""
    import json

    if not out.is_dir():
        return
    present = [n for n in RELEASE_FILES if (out / n).exists()]
    if not present:
        return
    try:
        marker = json.loads((out / INDEX).read_text(encoding="utf-8")).get("format")
    except (OSError, ValueError, AttributeError):
        marker = None
    if marker != INDEX_FORMAT:
        raise ConfigError(f"--out {os.fspath(out)!r} holds {present[:3]} not written by extract (no {INDEX} of "
                          "ours): choose an empty or new folder, the files there would be replaced")


def check_work_files(ids: dict[str, Path], options: Options) -> None:
    """Refuse a work folder whose finished videos were extracted with other settings (before any work)."""
    mismatched = []
    for video_id in ids:
        path = work_path(options.out, video_id)
        if not path.is_file():
            continue
        try:
            found = read_attrs(path)["settings"]
        except WorkFolderError:
            continue  # unreadable: extracted again
        diff = settings_differences(found, options.settings)
        if diff:
            mismatched.append((video_id, diff))
    if mismatched:
        video_id, diff = mismatched[0]
        raise ConfigError(
            f"--out {os.fspath(options.out)!r}: {len(mismatched)} video(s) in {WORK_DIR}/ were extracted with other "
            f"settings (e.g. {video_id!r}: {'; '.join(diff[:3])}); use another --out, pass the same settings, or "
            f"delete {os.fspath(options.out / WORK_DIR)} to extract again"
        )


def is_done(video_id: str, file: Path, options: Options) -> bool:
    """A finished work file with these settings for this very file (same size and modification time)."""
    path = work_path(options.out, video_id)
    if not path.is_file():
        return False
    try:
        attrs = read_attrs(path)
        source = source_signature(file)
    except (WorkFolderError, OSError):
        return False
    same = {k: attrs["source"].get(k) for k in ("size", "mtime_ns")} == {k: source[k] for k in ("size", "mtime_ns")}
    return same and not settings_differences(attrs["settings"], options.settings)


def extract_shard(ids: dict[str, Path], networks: Networks, options: Options, rank: int = 0, world: int = 1,
                  timer: Timer | None = None, log=print) -> Outcome:
    """Extract this rank's share (every ``world``-th video of the sorted list, from ``rank``)."""
    outcome = Outcome()
    mine = list(ids.items())[rank::world]
    for n, (video_id, file) in enumerate(mine, 1):
        if "&" in video_id:
            outcome.failures.append(f"{file}: its video id {video_id!r} holds '&', which the annotation format "
                                    "uses as its separator: rename the file")
            continue
        if options.labels is not None and video_id not in options.labels:
            outcome.failures.append(f"{file}: no line of --labels names its video id {video_id!r} (in a labelled run "
                                    "every video needs at least one event line)")
            continue
        if is_done(video_id, file, options):
            outcome.reused += 1
            outcome.done.append(video_id)
            continue
        start = time.perf_counter()
        try:
            summary = extract_video(file, work_path(options.out, video_id), options.convention, networks,
                                    options.settings, batch_size=options.batch_size, max_pixels=options.max_pixels,
                                    timer=timer)
        except VideoError as exc:
            outcome.failures.append(str(exc))
            log(f"[{n}/{len(mine)}] FAILED {exc}", file=sys.stderr)
            continue
        except Exception as exc:  # noqa: BLE001 - one strange file must not end a run over thousands
            outcome.failures.append(f"{file}: unexpected {type(exc).__name__}: {exc} (a bug or an unusual file: "
                                    "please report it)")
            log(f"[{n}/{len(mine)}] FAILED {outcome.failures[-1]}", file=sys.stderr)
            continue
        outcome.extracted += 1
        outcome.done.append(video_id)
        notes = f"; {'; '.join(summary.notes)}" if summary.notes else ""
        log(f"[{n}/{len(mine)}] {file}: {summary.seconds} s ({time.perf_counter() - start:.1f} s){notes}")
    return outcome


def assign_splits(video_ids_: list[str], split: str, ratio) -> dict[str, str]:
    """video id -> split. One split for all, or a (train, val, test) ratio over videos ordered by a hash of their
    id (stable when videos are added; a video's rows never straddle splits)."""
    if ratio is None:
        return dict.fromkeys(video_ids_, split)
    order = sorted(video_ids_, key=lambda v: (zlib.crc32(v.encode()), v))
    counts = _largest_remainder(len(order), ratio)
    out, i = {}, 0
    for name, count in zip(SPLITS, counts):
        for v in order[i:i + count]:
            out[v] = name
        i += count
    return out


def _largest_remainder(n: int, ratio) -> list[int]:
    total = sum(ratio)
    exact = [n * r / total for r in ratio]
    counts = [int(e) for e in exact]
    for j in sorted(range(3), key=lambda j: exact[j] - counts[j], reverse=True)[: n - sum(counts)]:
        counts[j] += 1
    for j in range(3):  # every split asked for gets a video when there are enough
        if ratio[j] > 0 and counts[j] == 0 and n >= sum(r > 0 for r in ratio):
            counts[max(range(3), key=lambda k: counts[k])] -= 1
            counts[j] += 1
    return counts


def build_rows(done: list[str], ids: dict[str, Path], summaries: dict[str, dict], options: Options,
               log=print) -> list[Row]:
    splits = assign_splits(done, options.split, options.split_ratio)
    rows = []
    for video_id in done:
        seconds = summaries[video_id]["seconds"]
        for e in (options.labels or {}).get(video_id, []):
            if e.end > seconds:
                log(f"note: --labels line {e.line}: {video_id!r} has {seconds} whole seconds, the event "
                    f"[{e.start}, {e.end}) is cut to them", file=sys.stderr)
        for w in windows(seconds):
            file = os.fspath(ids[video_id])
            if options.labels is None:
                rows.append(Row(video_id, file, w, splits[video_id]))
            else:
                rows += [Row(video_id, file, w, splits[video_id], label)
                         for label in row_labels(options.labels[video_id], w, options.categories)]
    return rows


def join(ids: dict[str, Path], done: list[str], options: Options, log=print) -> list[Row]:
    """Write the release folder for the finished videos (in id order); returns its rows."""
    done = sorted(done)
    summaries = {v: read_attrs(work_path(options.out, v))["summary"] for v in done}
    rows = build_rows(done, ids, summaries, options, log)
    videos = [Video(v, os.fspath(ids[v]), work_path(options.out, v), summaries[v]) for v in done]
    write_release(options.out, videos, rows, dtype=options.dtype, settings=options.settings,
                  categories=options.categories if options.labels is not None else None)
    return rows


def gather(outcome: Outcome, world: int) -> Outcome:
    """Every rank's outcome, merged (all ranks get it)."""
    if world == 1:
        return outcome
    import torch.distributed as dist

    parts = [None] * world
    dist.all_gather_object(parts, outcome)
    merged = Outcome()
    for p in parts:
        merged.done += p.done
        merged.extracted += p.extracted
        merged.reused += p.reused
        merged.failures += p.failures
    return merged


def distributed() -> tuple[int, int]:
    """(rank, world size); joins the gloo process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return dist.get_rank(), world


def run(ids: dict[str, Path], networks: Networks, options: Options, log=print) -> int:
    """The whole run; exit status 0, or 1 when a video failed (every failure listed at the end)."""
    rank, world = distributed()
    check_work_files(ids, options)
    shard_log = log if world == 1 else (lambda msg, **kw: log(f"[rank {rank}] {msg}", **kw))
    outcome = gather(extract_shard(ids, networks, options, rank, world, log=shard_log), world)
    if rank == 0:
        _report(ids, outcome, options, log)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return 1 if outcome.failures or not outcome.done else 0


def _report(ids: dict[str, Path], outcome: Outcome, options: Options, log) -> None:
    if outcome.done:
        rows = join(ids, outcome.done, options, log)
        log(f"{len(outcome.done)} videos ({outcome.extracted} extracted, {outcome.reused} already done), "
            f"{len(rows)} rows -> {options.out}")
    else:
        log(f"no video could be extracted: nothing written to {options.out}", file=sys.stderr)
    if outcome.failures:
        log(f"{len(outcome.failures)} of {len(ids)} videos failed:", file=sys.stderr)
        for line in outcome.failures:
            log(f"  {line}", file=sys.stderr)


def device_for(name: str) -> torch.device:
    """``auto`` = the local rank's GPU when there is one, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name!r}: no CUDA device is available here")
    return device
