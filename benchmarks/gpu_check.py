"""The GPU check in one command: `make gpu-check` (`python -m benchmarks.gpu_check [--quick]`).

On a machine with CUDA it (1) runs the tests marked `cuda` (tests/cuda: selection on CUDA tensors
picks what the CPU picks, fixed-mask predictions on CUDA within the stated tolerance of the CPU's,
one training epoch on CUDA, the score-pool flow on CUDA) and (2) prints a timing table: fixed-mask
prediction of 265,137 sequences (one plain pass and 50 masks), regression, classification and
binary DEIMOS at the acquisition benchmark's sizes with the tensors on the GPU, and one
paper-scale benchmark round (`splicing_b10`: train on 75 labels, predict the 5,000 candidates
under 50 masks, pick 10, train again on 85 and test). Budget: under 8 minutes on one H100; the
README quotes the same table run on the 2-core CPU machine (`--device cpu`).

Without CUDA the `cuda` tests are skipped with the reason, the table is not run, and the command
exits 0 saying so. `DEIMOS_CHECK_DEVICE=cpu` (or `--device cpu`) runs everything on the CPU
instead, to check this script on a machine without a GPU (use `--quick`: small sizes).

Exit status: 0 when the tests pass (or there is no CUDA device), 1 when a `cuda` test fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch

CHECK_DEVICE_ENV = "DEIMOS_CHECK_DEVICE"  # the variable tests/conftest.py reads


@dataclass(frozen=True)
class Timing:
    """One line of the timing table."""

    step: str
    size: str
    seconds: float
    peak_device_mb: float | None = None
    note: str = ""


@dataclass(frozen=True)
class Sizes:
    """The sizes timed: the issue's targets (`full`) or a dry run's (`quick`)."""

    sequences: int
    reg_n: int
    cls_n: int
    bin_n: int
    batch: int
    paper_round: bool


FULL = Sizes(
    sequences=265_137, reg_n=265_137, cls_n=60_000, bin_n=265_137, batch=100, paper_round=True
)
QUICK = Sizes(sequences=8_192, reg_n=20_000, cls_n=2_000, bin_n=20_000, batch=20, paper_round=False)


def run_cuda_tests(device: str) -> int:
    """`pytest -m cuda tests/cuda` in a child process with the check device set; its exit code."""
    env = dict(os.environ, **{CHECK_DEVICE_ENV: device})
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-m", "cuda", "tests/cuda"]
    print("$", " ".join(cmd[2:]), f"({CHECK_DEVICE_ENV}={device})", flush=True)
    return subprocess.run(cmd, env=env, check=False).returncode


def _timed(device: torch.device, fn: Callable[[], object]) -> tuple[float, float | None]:
    """Seconds of `fn()` (device work finished) and the device's peak allocated MB during it."""
    on_cuda = device.type == "cuda"
    if on_cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    fn()
    if on_cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 1e6 if on_cuda else None
    return seconds, peak


def time_prediction(device: torch.device, n: int) -> list[Timing]:
    """SplicingCNN on `n` random sequences: one plain pass, then 50 fixed masks."""
    from benchmarks.prediction import random_sequences
    from deimos.uncertainty.predict import predict_fixed_masks, predict_mean
    from models import SplicingCNN

    model = SplicingCNN()
    X = random_sequences(n, 101, 0)
    batch = 4096 if device.type == "cuda" else 512
    predict_fixed_masks(model, X[:batch], n_masks=50, batch_size=batch, device=device)  # warm-up
    plain_s, plain_mb = _timed(
        device, lambda: predict_mean(model, X, batch_size=batch, device=device, progress=False)
    )
    masks_s, masks_mb = _timed(
        device,
        lambda: predict_fixed_masks(
            model, X, n_masks=50, batch_size=batch, device=device, progress=False
        ),
    )
    size = f"{n:,} seq, batch {batch}"
    return [
        Timing("predict SplicingCNN, plain pass", size, plain_s, plain_mb),
        Timing(
            "predict SplicingCNN, 50 masks", size, masks_s, masks_mb, f"{masks_s / plain_s:.2f}x"
        ),
    ]


def time_selection(device: torch.device, sizes: Sizes) -> list[Timing]:
    """DEIMOS on random predictions moved to `device` (float64, the exact path)."""
    from benchmarks.acquisition import Case, default_tau_inv, make_predictions
    from deimos.acquisition.deimos import select_deimos

    rows = []
    for label, n, c in (
        ("DEIMOS regression", sizes.reg_n, 1),
        ("DEIMOS classification", sizes.cls_n, 10),
        ("DEIMOS binary", sizes.bin_n, 2),
    ):
        preds = make_predictions(Case(label, "deimos", n, 50, c, sizes.batch))
        tau = default_tau_inv(preds)
        on_device = torch.from_numpy(preds).to(device)
        select_deimos(on_device[:1000], 2, tau_inv=tau)  # warm-up: kernels, allocator
        seconds, peak = _timed(device, partial(select_deimos, on_device, sizes.batch, tau_inv=tau))
        size = f"n={n:,} c={c} J=50 b={sizes.batch}"
        rows.append(Timing(label, size, seconds, peak))
        del on_device
    return rows


def time_paper_round(device: torch.device) -> Timing:
    """One round of the paper-scale `splicing_b10` task (DEIMOS, seed 0) through `run_benchmark`."""
    from deimos.experiments.benchmark import SCALES
    from deimos.experiments.runner import run_benchmark

    task = SCALES["paper"]["splicing_b10"].replace(n_rounds=1)
    frame: list[object] = []
    seconds, peak = _timed(device, lambda: frame.append(run_benchmark(task, "deimos", 0)))
    size = f"{task.n_initial} labels, {task.pool_size:,} candidates, J={task.n_masks}"
    return Timing("paper round splicing_b10", size, seconds, peak, "2 trainings, 1 pick of 10")


def format_table(rows: list[Timing]) -> str:
    """Markdown table of the timings."""
    lines = ["| step | size | seconds | peak device MB | note |", "|---|---|---:|---:|---|"]
    for r in rows:
        peak = "" if r.peak_device_mb is None else f"{r.peak_device_mb:,.0f}"
        lines.append(f"| {r.step} | {r.size} | {r.seconds:.2f} | {peak} | {r.note} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the `cuda` tests, then the timing table; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, no paper round")
    parser.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default=os.environ.get(CHECK_DEVICE_ENV, "cuda"),
        help=f"cuda (default, or ${CHECK_DEVICE_ENV}) or cpu for a dry run",
    )
    parser.add_argument("--skip-tests", action="store_true", help="timing table only")
    parser.add_argument("--json", type=Path, help="also write the timings to this JSON file")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    has_cuda = torch.cuda.is_available()
    print(f"torch {torch.__version__}, CUDA available: {has_cuda}", flush=True)
    tests_rc = 0 if args.skip_tests else run_cuda_tests(args.device)
    if args.device == "cuda" and not has_cuda:
        print(
            "no CUDA device: the `cuda` tests were skipped and the timing table was not run "
            f"(GPU check not run; {CHECK_DEVICE_ENV}=cpu dry-runs it on the CPU)"
        )
        return 0
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    sizes = QUICK if args.quick else FULL
    print(f"timing on {name} ({torch.get_num_threads()} CPU threads)", flush=True)
    rows = time_prediction(device, sizes.sequences)
    rows += time_selection(device, sizes)
    if sizes.paper_round:
        rows.append(time_paper_round(device))
    print(format_table(rows))
    print(f"gpu check: {time.perf_counter() - started:.0f} s in all; cuda tests exit {tests_rc}")
    if args.json is not None:
        payload = {"device": name, "torch": torch.__version__, "tests_exit": tests_rc}
        payload["timings"] = [asdict(r) for r in rows]
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0 if tests_rc == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
