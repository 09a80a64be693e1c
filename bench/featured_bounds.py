"""What bounds the featured target where matchmaking misses it? References beside (a) and (d).

bench/ranking_sim.py's goal asks (d) to reach a trustworthy featured set, (2), with a quarter of (a)'s
votes. At N = 200 with noisy voters (slope 1.0) it does not. This asks why, in the same simulated worlds,
with the same TrueSkill ratings, model prior, vote model and "reached and held" rule:

* ``band`` (a genie, not a policy: it knows the true quality): every duel is between one of the true
  top 10% and one of the next 10%, the pairs that decide the featured set. What is left is the cost of
  *ranking* the contenders once they are known.
* ``topk`` (textbook top-k identification, LUCB-like, free of the visual constraint): each batch duels
  the photos the ratings are least sure sit on their side of the cut, each against an uncertain photo on
  the other side; ``--explore`` of the duels are uniform random pairs.
* ``refit``: (d)'s very votes, ranked instead by a batch fit over all of them (the probit model TrueSkill
  assumes, with the same draw margin and model prior; MAP with a Laplace sigma, ranked by mu - k*sigma),
  refitted after every batch: whether the sequential update, rather than the pairs, loses the target.
* a bootstrap over seeds of (d)'s ratio to (a)'s median votes, so a miss is told from seed luck.

    .venv/bin/python bench/featured_bounds.py --seeds 60 --jobs 2 [--refit]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy.special import ndtr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ranking_sim import Task, _our_pairs, _Tracker, run
from bench.sim_core import DRAW, RIGHT, _v_w_draw, _v_w_win, disjoint_groups, make_world, ts_update, vote
from gaming.matchmaking import DEFAULT_POLICY
from gaming.ratings import RatingEnv, prior_rating

N = 200
R = 0.7
TOP = 0.10
STRATEGIES = ("a", "d", "band", "topk", "refit")


def reference_run(variant: str, slope: float, seed: int, strategy: str, explore: float, cap: float) -> float:
    """Votes per photo until (2) is reached and held, for the ``band`` or ``topk`` strategy."""
    env = RatingEnv()
    world = make_world(N, variant, seed)
    vote_rng = np.random.default_rng(seed * 1000 + 7)  # the same voter draws as ranking_sim's runs
    rng = random.Random(seed * 1000 + 11)
    priors = [prior_rating(float(x), env) for x in world.model_quality(R)]
    mu, sigma = np.array([p.mu for p in priors]), np.array([p.sigma for p in priors])
    m = round(TOP * N)
    by_truth = np.argsort(-world.q)
    batch, votes, tracker = N // 20, 0, _Tracker()
    while votes < cap * N:
        left, right = [], []
        if strategy == "topk":
            cut = float(np.quantile(mu, 1.0 - TOP))
            p_above = ndtr((mu - cut) / sigma)
            unsure = np.argsort(-(p_above * (1.0 - p_above)))
        for i in range(batch):
            if strategy == "band":
                a, b = int(by_truth[rng.randrange(m)]), int(by_truth[m + rng.randrange(m)])
            elif rng.random() < explore:
                a, b = rng.sample(range(N), 2)
            else:
                a = int(unsure[i])
                other_side = [int(j) for j in unsure[: 2 * m] if j != a and (mu[j] > cut) != (mu[a] > cut)]
                b = rng.choice(other_side or [int(j) for j in unsure[: 2 * m] if j != a])
            left.append(a)
            right.append(b)
        lefts, rights = np.array(left), np.array(right)
        outcome = vote(world.q, lefts, rights, slope, vote_rng)
        for group in disjoint_groups(lefts, rights):
            mu, sigma = ts_update(mu, sigma, lefts[group], rights[group], outcome[group], env)
        votes += batch
        tracker.update(votes / N, mu - env.k * sigma, world.q)
        if not math.isinf(tracker.held["top"]):
            break
    return tracker.held["top"]


def batch_fit(
    start: np.ndarray, prior_mu: np.ndarray, prior_var: np.ndarray, win: np.ndarray, lose: np.ndarray,
    drawn: np.ndarray, env: RatingEnv, steps: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """MAP skills under the model TrueSkill assumes, over every vote at once (Newton from ``start``),
    and their Laplace sigmas. The gradient and curvature of a vote are TrueSkill's own v and w."""
    c = math.sqrt(2.0) * env.beta
    eps = env.draw_margin / c
    x = start.copy()
    for _ in range(steps):
        t = (x[win] - x[lose]) / c
        (v_win, w_win), (v_draw, w_draw) = _v_w_win(t, eps), _v_w_draw(t, eps)
        v, w = np.where(drawn, v_draw, v_win), np.where(drawn, w_draw, w_win)
        grad = -(x - prior_mu) / prior_var
        np.add.at(grad, win, v / c)
        np.add.at(grad, lose, -v / c)
        hess = np.diag(-1.0 / prior_var)
        for i, j, sign in ((win, win, -1.0), (lose, lose, -1.0), (win, lose, 1.0), (lose, win, 1.0)):
            np.add.at(hess, (i, j), sign * w / c**2)
        x = x - np.linalg.solve(hess, grad)
    return x, np.sqrt(np.diag(np.linalg.inv(-hess)))


def refit_run(variant: str, slope: float, seed: int, cap: float) -> float:
    """(d)'s run, vote for vote (same seeds, pairs and TrueSkill ratings choosing them), with the
    featured target tracked on the batch fit instead of on the TrueSkill ratings."""
    env, policy = RatingEnv(), DEFAULT_POLICY
    world = make_world(N, variant, seed)
    vote_rng = np.random.default_rng(seed * 1000 + 7)
    rng = random.Random(seed * 1000 + 11)
    priors = [prior_rating(float(x), env) for x in world.model_quality(R)]
    prior_mu, prior_var = np.array([p.mu for p in priors]), np.array([p.sigma**2 for p in priors])
    mu, sigma, fitted = prior_mu.copy(), np.sqrt(prior_var), prior_mu.copy()
    duels = np.zeros(N, dtype=int)
    win: list[int] = []
    lose: list[int] = []
    drawn: list[bool] = []
    batch, votes, tracker = N // 20, 0, _Tracker()
    while votes < cap * N:
        left, right, _ = _our_pairs(world, mu, sigma, duels, batch, env, policy, rng)
        outcome = vote(world.q, left, right, slope, vote_rng)
        for group in disjoint_groups(left, right):
            mu, sigma = ts_update(mu, sigma, left[group], right[group], outcome[group], env)
        np.add.at(duels, left, 1)
        np.add.at(duels, right, 1)
        votes += len(left)
        left_first = outcome != RIGHT
        win += np.where(left_first, left, right).tolist()
        lose += np.where(left_first, right, left).tolist()
        drawn += (outcome == DRAW).tolist()
        fitted, fitted_sigma = batch_fit(fitted, prior_mu, prior_var, np.array(win), np.array(lose),
                                         np.array(drawn), env)
        tracker.update(votes / N, fitted - env.k * fitted_sigma, world.q)
        if not math.isinf(tracker.held["top"]):
            break
    return tracker.held["top"]


def policy_run(variant: str, slope: float, seed: int, strategy: str) -> float:
    cap = 120.0 if strategy == "a" else 60.0
    task = Task(N, variant, slope, seed, strategy, R if strategy == "d" else math.nan, cap, DEFAULT_POLICY, RatingEnv())
    return run(task).votes_top


def one(job: tuple[str, float, int, str, float]) -> tuple[str, int, str, float]:
    variant, slope, seed, strategy, explore = job
    if strategy in ("a", "d"):
        return variant, seed, strategy, policy_run(variant, slope, seed, strategy)
    if strategy == "refit":
        return variant, seed, strategy, refit_run(variant, slope, seed, cap=60.0)
    return variant, seed, strategy, reference_run(variant, slope, seed, strategy, explore, cap=60.0)


def ratio_interval(
    d: np.ndarray, a: np.ndarray, rng: np.random.Generator, draws: int = 5000
) -> tuple[float, float, float]:
    """90% bootstrap interval of median(d) / median(a) (seeds resampled independently), and the share
    of resamples at or under a quarter."""
    ratios = np.array([np.median(rng.choice(d, len(d))) / np.median(rng.choice(a, len(a))) for _ in range(draws)])
    low, high = np.percentile(ratios, [5, 95])
    return float(low), float(high), float(np.mean(ratios <= 0.25))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=["indep", "corr"], choices=["indep", "corr"])
    ap.add_argument("--slope", type=float, default=1.0)
    ap.add_argument("--seeds", type=int, default=60)
    ap.add_argument("--explore", type=float, default=0.5, help="share of uniform random duels in topk")
    ap.add_argument("--refit", action="store_true",
                    help="also (d) ranked by the batch fit (slow: 1585 s for 60 seeds on 2 cores)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "featured_bounds.md")
    args = ap.parse_args(argv)
    jobs = [(v, args.slope, seed, s, args.explore) for v in args.variants for seed in range(args.seeds)
            for s in STRATEGIES if s != "refit" or args.refit]
    started = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(one, jobs))
    rng = np.random.default_rng(0)
    lines = [
        f"`.venv/bin/python bench/featured_bounds.py {' '.join(argv if argv is not None else sys.argv[1:])}` — "
        f"N = {N}, slope {args.slope:g}, r = {R}, {args.seeds} seeds, {time.perf_counter() - started:.0f} s. "
        "Votes per photo until (2) is reached and held (median; quarter of (a) is the goal).",
        "",
        "| neighbourhoods | (a) Elo | quarter of (a) | (d) ours | (d)/(a), 90% interval | P(ratio <= 0.25) "
        "| band genie | topk (LUCB-like) | (d) votes, batch fit |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for variant in args.variants:
        votes = {s: np.array([v for var, _, st, v in results if var == variant and st == s]) for s in STRATEGIES}
        refit = f"{np.median(votes['refit']):.1f}" if len(votes["refit"]) else "not run"
        a_med, d_med = float(np.median(votes["a"])), float(np.median(votes["d"]))
        low, high, p_quarter = ratio_interval(votes["d"], votes["a"], rng)
        lines.append(
            f"| {variant} | {a_med:.1f} | {a_med / 4:.1f} | {d_med:.1f} | {d_med / a_med:.2f} ({low:.2f}-{high:.2f}) "
            f"| {p_quarter:.3f} | {np.median(votes['band']):.1f} | {np.median(votes['topk']):.1f} | {refit} |"
        )
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
