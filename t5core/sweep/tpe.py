"""Model-based search: a small Tree-structured Parzen Estimator (Bergstra et al., 2011).

Why our own and not keras-tuner's BayesianOptimization/Hyperband oracle: the oracle keeps its own
on-disk trial state (oracle.json, trial folders), a second source of truth next to the sweep's
resumable state file; its Hyperband grows a trial's epochs by resuming it, which does not fit a
trainer whose learning-rate schedule depends on --train_steps; and a GP over a handful of mixed
(log/int/categorical) flags gains little over TPE at the 10-50 trial budgets a sweep here runs.
TPE is ~100 lines of numpy, is deterministic given (seed, trial index) so a resumed sweep proposes
what it would have, and handles log-scaled, integer and categorical flags natively.

The method: completed trials are split into the best `gamma` fraction ("good") and the rest.
Each parameter gets two densities, l(x) from the good trials and g(x) from the others (a mixture
of truncated Gaussians in the internal, log-where-log-scaled space, or smoothed frequencies for
choices, each with a prior component over the whole range). Candidates are drawn from l and the
one maximising l(x)/g(x), summed over parameters in log space, is proposed.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from t5core.sweep.space import Param, SearchSpace, unseen

_SQRT2 = math.sqrt(2.0)


def _norm_cdf(x):
    return 0.5 * (1.0 + np.vectorize(math.erf)(np.asarray(x, float) / _SQRT2))


class _Numeric:
    """Parzen estimator over [low, high]: Gaussians at the points plus a wide prior."""

    def __init__(self, points: np.ndarray, low: float, high: float):
        span = high - low
        mus = np.concatenate([points, [0.5 * (low + high)]])
        sigmas = np.empty(len(mus))
        order = np.argsort(points)
        sorted_pts = np.concatenate([[low], points[order], [high]])
        gaps = np.maximum(np.diff(sorted_pts)[:-1], np.diff(sorted_pts)[1:]) if len(points) else []
        # Bandwidth: the larger distance to a neighbour (hyperopt's rule), clipped so that one
        # point neither collapses to a spike nor spreads over the whole range.
        sigmas[order] = np.clip(gaps, span / min(100.0, 1.0 + len(points)), span)
        sigmas[-1] = span  # the prior
        self.mus, self.sigmas, self.low, self.high = mus, sigmas, low, high
        self.weights = np.full(len(mus), 1.0 / len(mus))
        self.mass = _norm_cdf((high - mus) / sigmas) - _norm_cdf((low - mus) / sigmas)

    def sample(self, rng, n: int) -> np.ndarray:
        out = np.empty(n)
        for i in range(n):
            k = rng.choice(len(self.mus), p=self.weights)
            for _ in range(100):  # rejection keeps the truncated Gaussian exact
                x = rng.normal(self.mus[k], self.sigmas[k])
                if self.low <= x <= self.high:
                    break
            else:
                x = float(np.clip(x, self.low, self.high))
            out[i] = x
        return out

    def log_pdf(self, x: np.ndarray) -> np.ndarray:
        z = (x[:, None] - self.mus[None]) / self.sigmas[None]
        pdf = np.exp(-0.5 * z * z) / (self.sigmas[None] * math.sqrt(2 * math.pi))
        return np.log(np.sum(self.weights * pdf / np.maximum(self.mass, 1e-12), axis=1) + 1e-300)


class _Categorical:
    def __init__(self, indices: np.ndarray, k: int):
        counts = np.bincount(indices.astype(int), minlength=k).astype(float) + 1.0  # +1: prior
        self.p = counts / counts.sum()

    def sample(self, rng, n):
        return rng.choice(len(self.p), size=n, p=self.p).astype(float)

    def log_pdf(self, x):
        return np.log(self.p[x.astype(int)])


def _estimator(param: Param, points: np.ndarray):
    if param.kind == "choice":
        return _Categorical(points, len(param.values))
    low, high = param.internal_bounds()
    return _Numeric(points, low, high)


def propose(space: SearchSpace, observations: Sequence[tuple[Mapping, float]],
            rng: np.random.Generator, seen: Sequence[Mapping] = (), gamma: float = 0.25,
            n_candidates: int = 24) -> dict | None:
    """Next parameters given (params, loss) observations, lower loss better.

    Returns None when the space is finite and every combination is in `seen`.
    """
    n = len(observations)
    losses = np.array([loss for _, loss in observations], float)
    order = np.argsort(losses, kind="stable")
    n_good = max(1, int(math.ceil(gamma * n)))
    good, bad = order[:n_good], order[n_good:]
    scores = np.zeros(n_candidates)
    candidates = {}
    for p in space.params:
        values = np.array([p.to_internal(obs[p.name]) for obs, _ in observations], float)
        below, above = _estimator(p, values[good]), _estimator(p, values[bad])
        xs = below.sample(rng, n_candidates)
        scores += below.log_pdf(xs) - above.log_pdf(xs)
        candidates[p.name] = [p.from_internal(x) for x in xs]
    for j in np.argsort(-scores, kind="stable"):
        params = {name: candidates[name][j] for name in space.names}
        if unseen(params, seen):
            return params
    # Every candidate was tried already (small discrete spaces): fall back to random unseen ones.
    for _ in range(1000):
        params = {p.name: p.sample(rng) for p in space.params}
        if unseen(params, seen):
            return params
    if space.is_finite:
        remaining = [g for g in space.grid() if unseen(g, seen)]
        return remaining[int(rng.integers(len(remaining)))] if remaining else None
    return params
