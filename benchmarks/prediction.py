"""Cost of fixed-mask MC dropout vs one deterministic pass, on CPU.

Run as `python -m benchmarks.prediction [--n N] [--quick]`. For SplicingCNN on random one-hot
sequences (L = 101; 265,137 by default, the size of the splicing pool) and ImageCNN on random
28x28 images (60,000 by default), it times one deterministic pass (`predict_mean`) and the
`J`-mask predictions (`predict_fixed_masks`) over the same inputs and batch size, and prints
their ratio (target <= 1.3 for J = 50), sequences per second, and peak memory.

Memory is the peak resident set size (RSS) of this process during each measurement, above the
RSS just before it, sampled every 2 ms from `/proc/self/statm` (torch's CPU allocations are
invisible to tracemalloc). It includes the output tensor and the per-batch activations, not the
inputs, which exist before the measurement starts.
"""

from __future__ import annotations

import argparse
import os
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from deimos.uncertainty.predict import predict_fixed_masks, predict_mean
from models import DropoutModel, ImageCNN, SplicingCNN

N_SEQUENCES = 265_137
N_IMAGES = 60_000
QUICK_SEQUENCES = 8_192
QUICK_IMAGES = 4_096


@dataclass(frozen=True)
class Row:
    """One benchmark line."""

    model: str
    n_points: int
    det_s: float
    masks_s: float
    n_masks: int
    det_peak_mib: float
    masks_peak_mib: float

    @property
    def ratio(self) -> float:
        return self.masks_s / self.det_s


class _PeakRss:
    """Track the peak RSS above the starting RSS in a background thread (Linux)."""

    def __init__(self, interval_s: float = 0.002) -> None:
        self._interval_s = interval_s
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._stop = threading.Event()
        self.start_bytes = self._rss()
        self.peak_bytes = self.start_bytes
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _rss(self) -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * self._page
        except OSError:  # not Linux: fall back to the process-lifetime peak (KiB on Linux/BSD)
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._rss())
            time.sleep(self._interval_s)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._rss())

    @property
    def increase_mib(self) -> float:
        return (self.peak_bytes - self.start_bytes) / 2**20


def _measure(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[float, float]:
    """Fastest of `repeats` runs (other load on the machine only ever adds time) and peak MiB."""
    best_s, peak_mib = float("inf"), 0.0
    for _ in range(repeats):
        with _PeakRss() as rss:
            t0 = time.perf_counter()
            out = fn()
            best_s = min(best_s, time.perf_counter() - t0)
        del out
        peak_mib = max(peak_mib, rss.increase_mib)
    return best_s, peak_mib


def random_sequences(n: int, length: int, seed: int) -> torch.Tensor:
    """`(n, 4, length)` random one-hot DNA."""
    gen = torch.Generator().manual_seed(seed)
    base_n_L = torch.randint(0, 4, (n, length), generator=gen)
    return torch.nn.functional.one_hot(base_n_L, 4).transpose(1, 2).float().contiguous()


def random_images(n: int, size: int, seed: int) -> torch.Tensor:
    """`(n, 1, size, size)` uniform random pixels in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=gen)


def bench_model(
    name: str,
    model: DropoutModel,
    X: torch.Tensor,
    n_masks: int,
    batch_size: int,
    repeats: int = 1,
) -> Row:
    """Time `predict_mean` and `predict_fixed_masks` on `X` (after a one-batch warm-up)."""
    dev = torch.device("cpu")
    predict_fixed_masks(model, X[:batch_size], n_masks=n_masks, batch_size=batch_size, device=dev)
    det_s, det_mib = _measure(
        lambda: predict_mean(model, X, batch_size=batch_size, device=dev, progress=False),
        repeats,
    )
    masks_s, masks_mib = _measure(
        lambda: predict_fixed_masks(
            model, X, n_masks=n_masks, seed=0, batch_size=batch_size, device=dev, progress=False
        ),
        repeats,
    )
    return Row(name, X.shape[0], det_s, masks_s, n_masks, det_mib, masks_mib)


def breakdown(
    model: DropoutModel, X: torch.Tensor, n_masks: int, batch_size: int, repeats: int
) -> str:
    """Where the time of the two predictions goes, part by part, on the same batches.

    Times, fastest of `repeats` with the parts interleaved (so a slow spell of the machine hits
    all of them): the trunk alone (`model.features`), the head with dropout off, the head under
    the `J` masks folded into its weights, and the two whole predictions. The ratio the parts
    predict, `(trunk + masked head) / (trunk + plain head)`, is printed beside the measured one.
    """
    from deimos.uncertainty.predict import _head_under_masks, _masked_head_weights, draw_head_masks

    model.eval()
    batches = [X[i : i + batch_size] for i in range(0, X.shape[0] - batch_size + 1, batch_size)]
    n = len(batches) * batch_size
    X = X[:n]
    with torch.inference_mode():
        weights = _masked_head_weights(model, draw_head_masks(model, n_masks, 0))
        feats = [model.features(x) for x in batches]
        blocks = list(model.head_blocks())

        def trunk() -> None:
            for x in batches:
                model.features(x)

        def head_plain() -> None:
            for f in feats:
                h = f
                for block in blocks:
                    h = block(h)

        def head_masked() -> None:
            for f in feats:
                _head_under_masks(model, weights, f)

        # The masked head's steps apart (SplicingCNN: one hidden layer, then the output).
        W_I_JO, b_JO = weights[0]
        hidden = [torch.relu(torch.addmm(b_JO, f, W_I_JO)) for f in feats]

        def head_product() -> None:
            for f in feats:
                torch.addmm(b_JO, f, W_I_JO)

        def head_product_no_bias() -> None:
            for f in feats:
                torch.mm(f, W_I_JO)

        def head_activation() -> None:
            for h in hidden:
                torch.relu(h)

        def head_permute() -> None:
            for h in hidden:
                h.reshape(batch_size, n_masks, -1).permute(1, 2, 0).contiguous()

        dev = torch.device("cpu")
        parts: dict[str, Callable[[], object]] = {
            "trunk (convolutions)": trunk,
            "head, dropout off": head_plain,
            f"head under {n_masks} masks": head_masked,
            "whole plain pass": lambda: predict_mean(model, X, batch_size, dev, progress=False),
            f"whole {n_masks}-mask pass": lambda: predict_fixed_masks(
                model, X, n_masks=n_masks, batch_size=batch_size, device=dev, progress=False
            ),
        }
        steps: dict[str, Callable[[], object]] = {
            "  first layer addmm": head_product,
            "  (same, mm without bias)": head_product_no_bias,
            "  ReLU, out of place": head_activation,
            "  permute to (J, O, B) copy": head_permute,
        }
        if len(blocks) == 2:
            parts = {**dict(list(parts.items())[:3]), **steps, **dict(list(parts.items())[3:])}
        best = dict.fromkeys(parts, float("inf"))
        for _ in range(repeats):
            for name, fn in parts.items():
                start = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - start)
    names = list(parts)
    lines = [f"{type(model).__name__}, {n:,} points, batch {batch_size}, fastest of {repeats}:"]
    lines += [f"  {name:<28} {best[name]:8.2f} s" for name in names]
    predicted = (best[names[0]] + best[names[2]]) / (best[names[0]] + best[names[1]])
    measured = best[names[-1]] / best[names[-2]]
    lines.append(f"  ratio predicted by the parts {predicted:.2f}, measured {measured:.2f}")
    return "\n".join(lines)


def format_table(rows: list[Row]) -> str:
    """Plain-text table of the rows."""
    header = (
        f"{'model':<12} {'n':>8} {'det s':>8} {'J':>4} {'J-mask s':>9} {'ratio':>6} "
        f"{'det pts/s':>10} {'J-mask pts/s':>12} {'det MiB':>8} {'J-mask MiB':>10}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.model:<12} {r.n_points:>8} {r.det_s:>8.2f} {r.n_masks:>4} {r.masks_s:>9.2f} "
            f"{r.ratio:>6.2f} {r.n_points / r.det_s:>10.0f} {r.n_points / r.masks_s:>12.0f} "
            f"{r.det_peak_mib:>8.0f} {r.masks_peak_mib:>10.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run both benchmarks, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=None, help="points per model (overrides sizes)")
    parser.add_argument("--quick", action="store_true", help="8,192 sequences, 4,096 images")
    parser.add_argument("--masks", type=int, default=50, help="masks J (default 50)")
    parser.add_argument("--batch-size", type=int, default=512, help="rows per pass")
    parser.add_argument(
        "--repeats", type=int, default=None, help="runs per timing, fastest kept (quick: 3)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="time trunk, plain head and masked head apart (SplicingCNN; default n 65,536)",
    )
    args = parser.parse_args(argv)
    if args.n is not None and args.n < 1:
        parser.error(f"--n must be positive, got {args.n}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else 1)
    if args.breakdown:
        n = args.n or (QUICK_SEQUENCES if args.quick else 65_536)
        X = random_sequences(n, 101, 0)
        print(breakdown(SplicingCNN(), X, args.masks, args.batch_size, args.repeats or 3))
        return 0
    n_seq = args.n or (QUICK_SEQUENCES if args.quick else N_SEQUENCES)
    n_img = args.n or (QUICK_IMAGES if args.quick else N_IMAGES)
    rows = [
        bench_model(
            "SplicingCNN",
            SplicingCNN(),
            random_sequences(n_seq, 101, 0),
            args.masks,
            args.batch_size,
            repeats,
        ),
        bench_model(
            "ImageCNN",
            ImageCNN(),
            random_images(n_img, 28, 1),
            args.masks,
            args.batch_size,
            repeats,
        ),
    ]
    print(
        f"CPU, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"batch {args.batch_size}, fastest of {repeats}; MiB = peak RSS increase during the call"
    )
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
