"""In-memory building blocks of the ranking simulation (numpy, no database).

* :class:`World`: N photos with a hidden true quality ``q ~ N(0, 1)``, embeddings in clusters, the
  k-NN lists ingest would keep (k = 24, cosine), owners, and a model quality score correlated r with q.
* :func:`vote`: a voter prefers i to j with P = sigmoid(slope * (q_i - q_j)) (Bradley-Terry) and
  answers DRAW with probability ``0.10 * (1 - |2P - 1|)`` (up to 10% for even pairs, none for
  lopsided ones).
* :func:`ts_update`: the TrueSkill 1-vs-1 update in closed form, vectorised over disjoint pairs (the
  same formulas as ``gaming.ratings._rate_closed_form``; tests check both against trueskill).
* :func:`elo_update`: Elo with K = 32 on the 400-point scale, vectorised over disjoint pairs.
* :func:`series_votes`: the same voters shown several photos: Plackett-Luce, the Bradley-Terry model
  extended to k photos (a pick is the best of ``slope * q + Gumbel noise``, an order sorts by it), so a
  series of two is exactly a duel without the DRAW answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr, ndtr

from gaming.featured import TOP_FRACTION, featured_count
from gaming.ratings import RatingEnv

LEFT, RIGHT, DRAW = 0, 1, 2
DRAW_MAX = 0.10


@dataclass(frozen=True)
class World:
    """One simulated catalogue. ``variant`` is "indep" (quality independent of the embedding) or
    "corr" (half of quality's variance is shared within a visual cluster)."""

    q: np.ndarray  # (N,) hidden true quality, N(0, 1)
    knn: np.ndarray  # (N, k) neighbour indices, nearest first
    knn_sim: np.ndarray  # (N, k) cosine similarities
    owner: np.ndarray  # (N,) owner ids
    latent_noise: np.ndarray  # (N,) the model's error, shared across r so runs differ only in r
    cluster: np.ndarray  # (N,) visual cluster ids (diagnostics only: the policy never sees them)

    @property
    def n(self) -> int:
        return len(self.q)

    def model_quality(self, r: float) -> np.ndarray:
        """A model score in [0, 1] with corr(Phi^-1(score), q) = r; uniform like a percentile."""
        latent = r * self.q + math.sqrt(max(0.0, 1.0 - r * r)) * self.latent_noise
        return ndtr(latent)


def make_world(n: int, variant: str, seed: int, k: int = 24, dim: int = 16, cluster_size: int = 25) -> World:
    """Photos in visual clusters (about ``cluster_size`` each); quality independent of them, or
    correlated (``corr``: q = sqrt(.5) * cluster effect + sqrt(.5) * own effect)."""
    rng = np.random.default_rng(seed)
    n_clusters = max(2, n // cluster_size)
    cluster = rng.integers(n_clusters, size=n)
    centres = rng.normal(size=(n_clusters, dim))
    emb = centres[cluster] + 0.6 * rng.normal(size=(n, dim))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    knn = np.argsort(-sim, axis=1)[:, :k]
    knn_sim = np.take_along_axis(sim, knn, axis=1)
    if variant == "indep":
        q = rng.normal(size=n)
    elif variant == "corr":
        effect = rng.normal(size=n_clusters)
        q = math.sqrt(0.5) * effect[cluster] + math.sqrt(0.5) * rng.normal(size=n)
    else:
        raise ValueError(f"unknown neighbourhood variant {variant!r}")
    owner = rng.integers(max(1, n // 4), size=n)  # ~4 photos per owner
    return World(q=q, knn=knn, knn_sim=knn_sim, owner=owner, latent_noise=rng.normal(size=n), cluster=cluster)


def vote(q: np.ndarray, left: np.ndarray, right: np.ndarray, slope: float, rng: np.random.Generator) -> np.ndarray:
    """Outcomes (LEFT/RIGHT/DRAW) of one vote per pair from Bradley-Terry voters with draws."""
    p = 1.0 / (1.0 + np.exp(-slope * (q[left] - q[right])))
    p_draw = DRAW_MAX * (1.0 - np.abs(2.0 * p - 1.0))
    u = rng.random(len(left))
    return np.where(u < p_draw, DRAW, np.where(u < p_draw + (1.0 - p_draw) * p, LEFT, RIGHT))


def series_votes(q: np.ndarray, members: np.ndarray, slope: float, rng: np.random.Generator) -> np.ndarray:
    """Each row of ``members`` (series x k photo indices) ordered best first by Plackett-Luce voters:
    column 0 is the pick. Gumbel noise on ``slope * q`` gives P(i beats j) = sigmoid(slope (q_i - q_j)),
    the duel voters' odds, for every pair in the series."""
    utility = slope * q[members] + rng.gumbel(size=members.shape)
    order = np.argsort(-utility, axis=1, kind="stable")
    result: np.ndarray = np.take_along_axis(members, order, axis=1)
    return result


def _v_w_win(t: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    x = t - eps
    v = np.exp(-0.5 * x * x - 0.5 * math.log(2 * math.pi) - log_ndtr(x))
    w = v * (v + x)
    far = x < -30
    v = np.where(far, -x - 1 / x + 2 / x**3, v)
    w = np.where(far, 1 - 1 / x**2 + 6 / x**4, w)
    return v, np.clip(w, 1e-12, 1 - 1e-12)


def _v_w_draw(t: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    abs_t = np.abs(t)
    a, b = eps - abs_t, -eps - abs_t
    denom = ndtr(a) - ndtr(b)
    pdf_a = np.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
    pdf_b = np.exp(-0.5 * b * b) / math.sqrt(2 * math.pi)
    ok = denom > 1e-300
    safe = np.where(ok, denom, 1.0)
    v = np.where(ok, (pdf_b - pdf_a) / safe, a)
    w = np.where(ok, v * v + (a * pdf_a - b * pdf_b) / safe, 1 - 1e-12)
    return np.where(t < 0, -v, v), np.clip(w, 1e-12, 1 - 1e-12)


def ts_update(
    mu: np.ndarray, sigma: np.ndarray, left: np.ndarray, right: np.ndarray, outcome: np.ndarray, env: RatingEnv
) -> tuple[np.ndarray, np.ndarray]:
    """New (mu, sigma) arrays after one vote on each of the disjoint pairs (left[i], right[i])."""
    left_wins = outcome != RIGHT  # for a draw the order does not matter; keep left first
    win = np.where(left_wins, left, right)
    lose = np.where(left_wins, right, left)
    var_w = sigma[win] ** 2 + env.tau**2
    var_l = sigma[lose] ** 2 + env.tau**2
    c2 = var_w + var_l + 2 * env.beta**2
    c = np.sqrt(c2)
    t = (mu[win] - mu[lose]) / c
    eps = env.draw_margin / c
    drawn = outcome == DRAW
    v_win, w_win = _v_w_win(t, eps)
    v_draw, w_draw = _v_w_draw(t, eps)
    v = np.where(drawn, v_draw, v_win)
    w = np.where(drawn, w_draw, w_win)
    new_mu, new_sigma = mu.copy(), sigma.copy()
    new_mu[win] = mu[win] + var_w / c * v
    new_mu[lose] = mu[lose] - var_l / c * v
    new_sigma[win] = np.sqrt(var_w * (1 - var_w / c2 * w))
    new_sigma[lose] = np.sqrt(var_l * (1 - var_l / c2 * w))
    return new_mu, new_sigma


def elo_update(
    elo: np.ndarray, left: np.ndarray, right: np.ndarray, outcome: np.ndarray, k_factor: float = 32.0
) -> np.ndarray:
    """New Elo ratings after one vote on each of the disjoint pairs (a draw scores 0.5 each)."""
    expected = 1.0 / (1.0 + 10.0 ** ((elo[right] - elo[left]) / 400.0))
    score = np.where(outcome == LEFT, 1.0, np.where(outcome == RIGHT, 0.0, 0.5))
    new = elo.copy()
    new[left] += k_factor * (score - expected)
    new[right] -= k_factor * (score - expected)
    return new


def _ranks(x: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(x))
    ranks[np.argsort(x, kind="stable")] = np.arange(len(x))
    return ranks


def disjoint_groups(left: np.ndarray, right: np.ndarray) -> list[np.ndarray]:
    """Split pairs, in order, into runs in which no photo appears twice (each run updates at once)."""
    groups: list[np.ndarray] = []
    seen: set[int] = set()
    start = 0
    for i, (a, b) in enumerate(zip(left.tolist(), right.tolist(), strict=True)):
        if a in seen or b in seen:
            groups.append(np.arange(start, i))
            seen, start = set(), i
        seen.update((a, b))
    groups.append(np.arange(start, len(left)))
    return groups


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho (ties broken by index: only all-equal starting scores tie, far below any target)."""
    ra, rb = _ranks(a), _ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    return float((ra @ rb) / math.sqrt((ra @ ra) * (rb @ rb)))


def top_recall(score: np.ndarray, truth: np.ndarray, top_fraction: float = TOP_FRACTION) -> float:
    """Share of the true featured set (by true skill) that the featured set by score holds."""
    m = featured_count(len(truth), top_fraction)
    featured = np.argsort(-score, kind="stable")[:m]
    best = np.argsort(-truth, kind="stable")[:m]
    return len(np.intersect1d(featured, best)) / m
