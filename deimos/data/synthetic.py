"""Synthetic 1-D regression data (paper Appendix D): noisy samples of a fixed random network.

`random_network_1d` draws the noise-free function `f` (two tanh hidden layers) and
`synthetic_1d` samples `y = f(x) + noise` from it. Every random choice takes its seed as an
argument; nothing reads global random state. Real data sets and splits are in
`deimos.data.datasets`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deimos.checks import check_int, check_number
from deimos.data.datasets import SeedLike, _check_count, _rng
from deimos.errors import InputError


@dataclass(frozen=True, eq=False)
class RandomNetwork1D:
    """A fixed random fully-connected network `f: R -> R` with two tanh hidden layers.

    Calling it evaluates the noise-free function, e.g. on a grid for plots. The input is first
    mapped from `x_range` to [-1, 1], and the output is shifted and scaled so that `f` has mean
    0 and standard deviation 1 over `x_range`, so `noise_sd` is a fraction of the signal's sd.

    Attributes:
        W1, b1, W2, b2, w3, b3: weights and biases with shapes `(1, H)`, `(H,)`, `(H, H)`,
            `(H,)`, `(H,)` and a scalar (H hidden units per layer).
        x_range: `(low, high)` of the input range.
        out_mean, out_std: the output normalisation.
    """

    W1: np.ndarray
    b1: np.ndarray
    W2: np.ndarray
    b2: np.ndarray
    w3: np.ndarray
    b3: float
    x_range: tuple[float, float]
    out_mean: float = 0.0
    out_std: float = 1.0

    def raw(self, x: np.ndarray) -> np.ndarray:
        """The network before output normalisation; `x` `(n,)` or `(n, 1)` -> `(n,)` float64."""
        lo, hi = self.x_range
        u_N1 = (2.0 * (np.asarray(x, dtype=np.float64).reshape(-1, 1) - lo) / (hi - lo)) - 1.0
        h1_NH = np.tanh(u_N1 @ self.W1 + self.b1)
        h2_NH = np.tanh(h1_NH @ self.W2 + self.b2)
        return h2_NH @ self.w3 + self.b3  # (n,)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Noise-free `f(x)`; `x` `(n,)` or `(n, 1)` -> `(n,)` float64."""
        return (self.raw(x) - self.out_mean) / self.out_std


@dataclass(frozen=True, eq=False)
class Synthetic1D:
    """Noisy samples of a random network: `y = f(x) + N(0, noise_sd^2)`.

    Attributes:
        X: `(n, 1)` float32 inputs, uniform on `f.x_range`.
        y: `(n,)` float32 noisy targets.
        f: the noise-free function (call it on a grid for plots).
        noise_sd: standard deviation of the added Gaussian noise.
    """

    X: np.ndarray
    y: np.ndarray
    f: RandomNetwork1D
    noise_sd: float

    def __len__(self) -> int:
        return len(self.y)


def random_network_1d(
    seed: SeedLike, *, n_hidden: int = 32, x_range: tuple[float, float] = (-1.0, 1.0)
) -> RandomNetwork1D:
    """Draw the random network of `synthetic_1d` (Appendix D: two hidden layers of 32 units).

    The paper specifies only the architecture; the weight scales here are our choice, made so
    that `f` has several bends inside `x_range`: each first-layer unit gets its tanh transition
    at a uniformly drawn point of the (normalised) range.

    Args:
        seed: int or Generator for the weights.
        n_hidden: units per hidden layer.
        x_range: `(low, high)` input range, low < high.
    """
    rng = _rng(seed)
    lo, hi = _check_range(x_range)
    H = check_int(n_hidden, "n_hidden", minimum=1)
    W1_1_H = rng.normal(0.0, 4.0, size=(1, H))
    centres_H = rng.uniform(-1.0, 1.0, size=H)
    b1_H = -W1_1_H[0] * centres_H
    W2_H_H = rng.normal(0.0, 2.0 / np.sqrt(H), size=(H, H))
    b2_H = rng.normal(0.0, 0.5, size=H)
    w3_H = rng.normal(0.0, 1.0 / np.sqrt(H), size=H)
    b3 = float(rng.normal())
    net = RandomNetwork1D(W1_1_H, b1_H, W2_H_H, b2_H, w3_H, b3, (lo, hi))
    grid = np.linspace(lo, hi, 2001)
    raw = net.raw(grid)
    std = float(raw.std())
    # A constant network would make the normalisation divide by ~0; redraws are not worth it
    # for a test function, so say so.
    if std < 1e-12:
        raise InputError(f"random network for seed {seed!r} is constant on {x_range}")
    return RandomNetwork1D(W1_1_H, b1_H, W2_H_H, b2_H, w3_H, b3, (lo, hi), float(raw.mean()), std)


def synthetic_1d(
    n: int,
    *,
    seed: int,
    noise_sd: float = 0.1,
    x_range: tuple[float, float] = (-1.0, 1.0),
    n_hidden: int = 32,
) -> Synthetic1D:
    """1-D regression data from a random network (paper Appendix D).

    The network depends only on `seed` (not on `n`), so data sets of different sizes with one
    seed sample the same `f`; inputs and noise come from a separate stream of the same seed.

    Args:
        n: number of points.
        seed: integer seed for the network, the inputs and the noise.
        noise_sd: standard deviation of the Gaussian noise (f itself has sd 1 over the range).
        x_range: `(low, high)` input range.
        n_hidden: units per hidden layer.

    Returns:
        `Synthetic1D` with `X` `(n, 1)`, `y` `(n,)` and the noise-free `f`.

    Raises:
        InputError: `n` < 1, negative or non-finite `noise_sd`, or a bad range.
    """
    _check_count(n, "n")
    check_int(seed, "seed")
    check_number(noise_sd, "noise_sd", low=0.0)
    net_seq, data_seq = np.random.SeedSequence(int(seed)).spawn(2)
    f = random_network_1d(np.random.default_rng(net_seq), n_hidden=n_hidden, x_range=x_range)
    rng = np.random.default_rng(data_seq)
    x_N = rng.uniform(f.x_range[0], f.x_range[1], size=n)
    y_N = f(x_N) + rng.normal(0.0, noise_sd, size=n)
    return Synthetic1D(
        X=x_N.reshape(n, 1).astype(np.float32),
        y=y_N.astype(np.float32),
        f=f,
        noise_sd=float(noise_sd),
    )


def _check_range(x_range: tuple[float, float]) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in x_range)
    except (TypeError, ValueError) as err:
        raise InputError(f"x_range must be (low, high), got {x_range!r}") from err
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise InputError(f"x_range must be finite with low < high, got {x_range!r}")
    return lo, hi
