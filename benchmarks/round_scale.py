"""A lab round at the size of a whole splicing library: `python -m benchmarks.round_scale`.

Creates a simulated campaign (`deimos init --simulated`) with a 265,137-sequence pool and 300
initial labels, then times `deimos round` end to end: the real Prefect flow, DVC stages, git
commit. Each DVC stage prints its own wall time and peak memory (`deimos.campaign.stages`); the
rest of the round (Prefect's temporary server, DVC hashing and lock files, process starts, the
queue copy and the git commit) is the total minus the stages. The peak memory of the round is
the largest sum of resident memory over the `deimos round` process tree, sampled every 0.2 s
from /proc.

Targets (issue #15, 2 CPU cores): whole round <= 3 min, peak <= 4 GB, and everything that is not
training or scoring (prepare, export and the time outside the stages) <= 20 s.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

POOL_SIZE = 265_137
N_LABELS = 300
_STAGES = ("prepare", "train", "predict", "select", "export")
_STAGE_LINE = re.compile(r"^stage (\w+): .*seconds=([0-9.]+), peak_rss_mb=([0-9]+)")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss_bytes(root: int) -> int:
    """Resident memory of `root` and all its descendants, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                # The command name is in parentheses and may hold spaces: split after it.
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/statm", encoding="ascii") as fh:
                total += int(fh.read().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            pass
        stack.extend(children.get(pid, []))
    return total


class TreeMemorySampler:
    """Largest `tree_rss_bytes(pid)` seen while running (a background thread)."""

    def __init__(self, pid: int, interval_s: float = 0.2) -> None:
        self.pid, self.interval_s, self.peak = pid, interval_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_bytes(self.pid))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> TreeMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_logged(cmd: list[str], log: Path) -> tuple[float, int, list[str]]:
    """Run `cmd`, echo its output to stderr and `log`; return (seconds, peak tree RSS, lines)."""
    lines: list[str] = []
    start = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        with TreeMemorySampler(proc.pid) as sampler:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                lines.append(line.rstrip("\n"))
                if line.startswith(("stage ", "Running stage", "round ")):
                    print(f"  [{time.perf_counter() - start:6.1f} s] {line.rstrip()}",
                          file=sys.stderr, flush=True)  # fmt: skip
            rc = proc.wait()
    seconds = time.perf_counter() - start
    if rc != 0:
        tail = "\n".join(lines[-30:])
        raise SystemExit(f"{' '.join(cmd)} failed with exit status {rc} (log: {log}):\n{tail}")
    return seconds, sampler.peak, lines


def stage_times(lines: list[str]) -> dict[str, tuple[float, int]]:
    """`{stage: (seconds, peak RSS MB)}` from the stage summary lines of a round's output."""
    found: dict[str, tuple[float, int]] = {}
    for line in lines:
        match = _STAGE_LINE.match(line)
        if match:
            found[match.group(1)] = (float(match.group(2)), int(match.group(3)))
    missing = [s for s in _STAGES if s not in found]
    if missing:
        raise SystemExit(f"the round's output has no timing line for stage(s) {missing}")
    return found


def directory_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def format_report(
    pool_size: int,
    n_labels: int,
    init_seconds: float,
    total: float,
    peak_bytes: int,
    stages: dict[str, tuple[float, int]],
    predictions_mb: float,
) -> str:
    outside = total - sum(s for s, _ in stages.values())
    non_compute = outside + stages["prepare"][0] + stages["export"][0]
    rows = [("| part | seconds | peak RSS (MB) |"), "|---|---|---|"]
    rows += [f"| stage {name} | {stages[name][0]:.1f} | {stages[name][1]:,} |" for name in _STAGES]
    rows += [
        f"| outside the stages (Prefect, DVC, git, process starts) | {outside:.1f} | |",
        f"| **deimos round, total** | **{total:.1f}** | **{peak_bytes / 2**20:,.0f}** (tree) |",
    ]
    return "\n".join(
        [
            f"pool {pool_size:,} sequences, {n_labels} labels; `deimos init` took "
            f"{init_seconds:.1f} s (not part of the round)",
            "",
            *rows,
            "",
            f"round total {total:.1f} s (target <= 180 s); peak {peak_bytes / 2**30:.2f} GB "
            f"(target <= 4 GB); not training or scoring (prepare + export + outside the stages) "
            f"{non_compute:.1f} s (target <= 20 s); predictions on disk {predictions_mb:.1f} MB "
            "(float32 .npy)",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool-size", type=int, default=POOL_SIZE)
    parser.add_argument("--labels", type=int, default=N_LABELS, help="initial labels")
    parser.add_argument("--dir", type=Path, help="campaign directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the campaign directory")
    args = parser.parse_args(argv)
    if args.pool_size < 1000 or args.labels < 20:
        parser.error("--pool-size must be >= 1000 and --labels >= 20")
    deimos = str(Path(sys.executable).with_name("deimos"))
    parent = Path(tempfile.mkdtemp(prefix="deimos-round-scale-"))
    campaign = args.dir or parent / "campaign"
    if campaign.exists():
        parser.error(f"{campaign} exists; give a new --dir")
    try:
        print(f"creating a simulated campaign of {args.pool_size:,} sequences ...", file=sys.stderr)
        init_s, _, _ = run_logged(
            [deimos, "init", str(campaign), "--simulated", "--pool-size", str(args.pool_size),
             "--initial", str(args.labels)],
            parent / "init.log",
        )  # fmt: skip
        print("running deimos round ...", file=sys.stderr, flush=True)
        total, peak, lines = run_logged(
            [deimos, "round", "--campaign", str(campaign)], parent / "round.log"
        )
        predictions = next(campaign.glob("rounds/*/predictions"))
        print(
            format_report(
                args.pool_size, args.labels, init_s, total, peak, stage_times(lines),
                directory_mb(predictions),
            )
        )  # fmt: skip
    finally:
        if args.keep:
            print(f"kept {campaign} (logs in {parent})", file=sys.stderr)
        else:
            shutil.rmtree(parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
