"""Does the celebrity discount remove the fame advantage without hurting the ranking?

    .venv/bin/python bench/celebrity_sim.py                       # main table, ~15 CPU-minutes
    .venv/bin/python bench/celebrity_sim.py --seeds 4 --deltas 1  # quick look
    (bench/results/celebrity_sim.md holds the committed sections, each with its exact command.)

In memory. N photos with a hidden quality q ~ N(0, 1); a share of them (10 %) shows a celebrity.
Photos sit on a ring in random "visual" order; a duel takes a uniformly random anchor and a uniformly
random opponent among its k nearest ring neighbours (random-neighbour pairs: visual similarity is
unrelated to quality or fame). Voters are Bradley-Terry with a fame term,

    P(left preferred) = sigmoid(slope * (q_left - q_right) + delta * (celeb_left - celeb_right)),

and answer DRAW with probability 0.10 * (1 - |2P - 1|) (as in bench/sim_core.py). Every vote goes
through ``gaming.ratings.rate_duel`` -- the service's update. Photos start from
``gaming.ratings.prior_rating`` of a model score correlated ``--model-r`` with quality and blind to
fame (the production path), or with ``--prior uninformed`` from N(mu, sigma). For each
seed all conditions see the same pairs and the same random numbers (common random numbers), so
differences between rows are the method's, not luck's:

  unbiased          delta = 0, no discount: the reference ranking
  biased            delta as given, no discount
  (a) w=W           PartialPlayDiscount(W): celebrity side damped in both directions
  (a) wins w=W      PartialPlayDiscount(W).wins_only(outcome, ...): only celebrity wins damped
  (b) fitted        CelebrityOffset(offset), offset re-fitted by fit_celebrity_offset on the vote
                    log so far every N votes (0 until the first fit), as the service would do
  (b) replay        the same log replayed with the last fitted offset (``ratings rebuild``)
  (b) oracle        CelebrityOffset(logit_to_skill(delta)): the true fame effect, for reference

Measured at the end (ranking by mu): Spearman(mu, q) over all photos, and the celebrity photos'
mean rank error, mean(rank_by_mu - rank_by_q) over celebrity photos with rank N = best (positive =
over-ranked). Means over seeds with 95 % t-intervals; dSpearman is paired with the unbiased run of
the same seed.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy.special import ndtr
from scipy.stats import rankdata, spearmanr
from scipy.stats import t as student_t

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.partial_play import PartialPlayDiscount
from gaming.celebrity import (
    CelebrityOffset,
    fit_celebrity_offset,
    logit_to_skill,
)
from gaming.ratings import DuelAdjustment, Outcome, Rating, RatingEnv, prior_rating, rate_duel

DRAW_MAX = 0.10
_OUTCOMES = (Outcome.LEFT, Outcome.RIGHT, Outcome.DRAW)


@dataclass(frozen=True)
class World:
    q: np.ndarray  # (N,) hidden quality
    celebrity: np.ndarray  # (N,) bool
    left: np.ndarray  # (V,) photo index per vote
    right: np.ndarray  # (V,)
    u: np.ndarray  # (V,) uniform draws deciding each vote (shared by all conditions)
    model_noise: np.ndarray  # (N,) the quality model's error (see starting_ratings)


def make_world(n: int, votes: int, share: float, k: int, seed: int) -> World:
    rng = np.random.default_rng(seed)
    q = rng.normal(size=n)
    celebrity = np.zeros(n, dtype=bool)
    celebrity[rng.choice(n, size=max(1, round(share * n)), replace=False)] = True
    ring = rng.permutation(n)  # ring[pos] = photo; visual order unrelated to quality or fame
    position = np.empty(n, dtype=np.int64)
    position[ring] = np.arange(n)
    anchors = rng.integers(n, size=votes)
    steps = rng.integers(1, k // 2 + 1, size=votes) * rng.choice((-1, 1), size=votes)
    opponents = ring[(position[anchors] + steps) % n]
    swap = rng.random(votes) < 0.5  # which side the anchor is shown on
    left = np.where(swap, opponents, anchors)
    right = np.where(swap, anchors, opponents)
    return World(q=q, celebrity=celebrity, left=left, right=right, u=rng.random(votes), model_noise=rng.normal(size=n))


def starting_ratings(world: World, env: RatingEnv, prior: str, model_r: float) -> list[Rating]:
    """ "model": the production path, ``prior_rating(score)`` with a model score correlated
    ``model_r`` with quality (and blind to fame), uniform like a percentile (as bench/sim_core.py).
    "uninformed": N(env.mu, env.sigma) for every photo (a photo without a model score)."""
    if prior == "uninformed":
        return [Rating(env.mu, env.sigma)] * len(world.q)
    latent = model_r * world.q + math.sqrt(max(0.0, 1.0 - model_r**2)) * world.model_noise
    return [prior_rating(float(score), env) for score in ndtr(latent)]


def outcomes(world: World, slope: float, delta: float) -> np.ndarray:
    """0 = LEFT, 1 = RIGHT, 2 = DRAW, from the shared uniforms."""
    bonus = delta * (world.celebrity[world.left].astype(float) - world.celebrity[world.right].astype(float))
    p = 1.0 / (1.0 + np.exp(-(slope * (world.q[world.left] - world.q[world.right]) + bonus)))
    p_draw = DRAW_MAX * (1.0 - np.abs(2.0 * p - 1.0))
    u = world.u
    return np.where(u < p_draw, 2, np.where(u < p_draw + (1.0 - p_draw) * p, 0, 1))


AdjustFor = Callable[[int, Outcome, bool, bool], DuelAdjustment | None]


def replay(
    world: World,
    result: np.ndarray,
    env: RatingEnv,
    start: list[Rating],
    adjust_for: AdjustFor,
    on_vote: Callable[[int, int, int, Outcome, bool, bool], None] | None = None,
) -> np.ndarray:
    """Run every vote through rate_duel from the ``start`` ratings; returns the final mu per photo."""
    ratings = list(start)
    celeb = world.celebrity
    for v, (i, j, o) in enumerate(zip(world.left.tolist(), world.right.tolist(), result.tolist(), strict=True)):
        outcome = _OUTCOMES[o]
        ci, cj = bool(celeb[i]), bool(celeb[j])
        ratings[i], ratings[j] = rate_duel(
            ratings[i],
            ratings[j],
            outcome,
            env,
            left_celebrity=ci,
            right_celebrity=cj,
            adjustment=adjust_for(v, outcome, ci, cj),
        )
        if on_vote is not None:
            on_vote(v, i, j, outcome, ci, cj)
    return np.array([r.mu for r in ratings])


@dataclass(frozen=True)
class Task:
    n: int
    votes_per_photo: int
    share: float
    k: int
    slope: float
    deltas: tuple[float, ...]
    weights: tuple[float, ...]
    prior: str
    model_r: float
    conditions: frozenset[str]
    seed: int


CONDITIONS = ("biased", "a", "a-wins", "b-fitted", "b-replay", "b-oracle")


def metrics(mu: np.ndarray, world: World) -> tuple[float, float]:
    rho = float(spearmanr(mu, world.q).statistic)
    error = rankdata(mu) - rankdata(world.q)
    return rho, float(np.mean(error[world.celebrity]))


def _fixed(adjustment: DuelAdjustment | None) -> AdjustFor:
    return lambda *_: adjustment


def _per_vote(adjustments: list[PartialPlayDiscount]) -> AdjustFor:
    return lambda v, *_: adjustments[v]


def run_fitted(
    world: World, result: np.ndarray, env: RatingEnv, start: list[Rating], refit_every: int
) -> tuple[np.ndarray, list[tuple[str, str, Outcome, bool, bool]], float]:
    """(b) as the service runs it: the offset is re-fitted on the log so far every ``refit_every``
    votes and used for the votes after that (0 before the first fit). Returns mu, log, last offset."""
    log: list[tuple[str, str, Outcome, bool, bool]] = []
    current = [CelebrityOffset(0.0)]

    def record(v: int, i: int, j: int, o: Outcome, ci: bool, cj: bool) -> None:
        log.append((str(i), str(j), o, ci, cj))
        if (v + 1) % refit_every == 0:
            current[0] = CelebrityOffset(fit_celebrity_offset(log, env))

    mu = replay(world, result, env, start, lambda *_: current[0], on_vote=record)
    return mu, log, current[0].offset


Row = tuple[float, str, float, float, float]


def run(task: Task) -> list[Row]:
    """Rows (delta, condition, spearman, celebrity mean rank error, offset used at the end)."""
    env = RatingEnv()
    world = make_world(task.n, task.n * task.votes_per_photo, task.share, task.k, task.seed)
    start = starting_ratings(world, env, task.prior, task.model_r)
    want = task.conditions
    rows: list[Row] = []
    unbiased = replay(world, outcomes(world, task.slope, 0.0), env, start, _fixed(None))
    rows.append((math.nan, "unbiased", *metrics(unbiased, world), 0.0))
    celeb_left = world.celebrity[world.left].tolist()
    celeb_right = world.celebrity[world.right].tolist()
    for delta in task.deltas:
        result = outcomes(world, task.slope, delta)
        if "biased" in want:
            rows.append((delta, "biased", *metrics(replay(world, result, env, start, _fixed(None)), world), 0.0))
        for w in task.weights:
            sym = PartialPlayDiscount(w)
            if "a" in want:
                mu = replay(world, result, env, start, _fixed(sym))
                rows.append((delta, f"(a) w={w:g}", *metrics(mu, world), 0.0))
            if "a-wins" in want:
                wins = [
                    sym.wins_only(_OUTCOMES[o], left_celebrity=ci, right_celebrity=cj)
                    for o, ci, cj in zip(result.tolist(), celeb_left, celeb_right, strict=True)
                ]
                mu = replay(world, result, env, start, _per_vote(wins))
                rows.append((delta, f"(a) wins w={w:g}", *metrics(mu, world), 0.0))
        if want & {"b-fitted", "b-replay"}:
            mu, log, fitted = run_fitted(world, result, env, start, refit_every=task.n)
            if "b-fitted" in want:
                rows.append((delta, "(b) fitted", *metrics(mu, world), fitted))
            if "b-replay" in want:
                final = CelebrityOffset(fit_celebrity_offset(log, env))
                mu = replay(world, result, env, start, _fixed(final))
                rows.append((delta, "(b) replay", *metrics(mu, world), final.offset))
        if "b-oracle" in want:
            oracle = CelebrityOffset(logit_to_skill(delta, env))
            mu = replay(world, result, env, start, _fixed(oracle))
            rows.append((delta, "(b) oracle", *metrics(mu, world), oracle.offset))
    return rows


def _ci(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan
    half = student_t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, half


def _pm(values: list[float], digits: int) -> str:
    mean, half = _ci(values)
    return f"{mean:+.{digits}f} ± {half:.{digits}f}" if digits else f"{mean:.0f} ± {half:.0f}"


def table(results: list[list[Row]], args: argparse.Namespace) -> str:
    by: dict[tuple[float, str], list[tuple[float, float, float, int]]] = {}
    reference: dict[int, float] = {}
    unbiased_rows: list[tuple[float, float]] = []
    for seed, rows in enumerate(results):
        for delta, name, rho, err, offset in rows:
            if name == "unbiased":
                reference[seed] = rho
                unbiased_rows.append((rho, err))
            else:
                by.setdefault((delta, name), []).append((rho, err, offset, seed))
    n_celeb = max(1, round(args.share * args.n))
    prior = "uninformed N(mu, sigma)" if args.prior == "uninformed" else f"model prior, r = {args.model_r:g}"
    lines = [
        f"N = {args.n} photos ({n_celeb} celebrity), {args.votes_per_photo} votes per photo "
        f"({args.n * args.votes_per_photo} votes), k = {args.k} ring neighbours, slope = {args.slope:g}, "
        f"{prior}, {len(results)} seeds. Mean ± 95 % CI half-width over seeds; rank error in ranks "
        f"out of {args.n}.",
        "",
        "| delta (logit) | condition | Spearman | dSpearman vs unbiased | celebrity mean rank error "
        "| offset at end (skill) |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    rhos = [r for r, _ in unbiased_rows]
    lines.append(f"| - | unbiased (reference) | {_ci(rhos)[0]:.3f} | 0 | {_pm([e for _, e in unbiased_rows], 1)} | - |")
    for (delta, name), values in by.items():
        d_rho = [rho - reference[seed] for rho, _, _, seed in values]
        offsets = [o for _, _, o, _ in values]
        offset_text = _pm(offsets, 2) if name.startswith("(b)") else "-"
        lines.append(
            f"| {delta:g} | {name} | {_ci([v[0] for v in values])[0]:.3f} | {_pm(d_rho, 3)} "
            f"| {_pm([v[1] for v in values], 1)} | {offset_text} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--votes-per-photo", type=int, default=20)
    ap.add_argument("--share", type=float, default=0.10, help="share of photos showing a celebrity")
    ap.add_argument("--k", type=int, default=24, help="ring neighbours a duel may pair")
    ap.add_argument("--slope", type=float, default=1.0)
    ap.add_argument("--deltas", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0])
    ap.add_argument("--weights", type=float, nargs="+", default=[0.5, 0.25], help="(a) partial-play weights")
    ap.add_argument("--prior", choices=["model", "uninformed"], default="model")
    ap.add_argument("--model-r", type=float, default=0.5, help="corr(model score, quality) for --prior model")
    ap.add_argument("--conditions", nargs="+", choices=CONDITIONS, default=list(CONDITIONS))
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--title", default="", help="heading of this run's section")
    ap.add_argument("--append", action="store_true", help="append a section to --out instead of replacing it")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "celebrity_sim.md")
    args = ap.parse_args(argv)

    tasks = [
        Task(args.n, args.votes_per_photo, args.share, args.k, args.slope, tuple(args.deltas),
             tuple(args.weights), args.prior, args.model_r, frozenset(args.conditions), seed)
        for seed in range(args.seeds)
    ]  # fmt: skip
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(run, tasks))
    elapsed = time.perf_counter() - start
    command = "    .venv/bin/python bench/celebrity_sim.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    text = "\n".join(
        [
            f"## {args.title or 'Celebrity discount simulation'}",
            "",
            command.rstrip(),
            "",
            f"Machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores (shared with other work), "
            f"Python {platform.python_version()}, {args.jobs} worker processes; {elapsed:.0f} s.  ",
            f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "",
            table(results, args),
            "",
        ]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.append and args.out.exists():
        args.out.write_text(args.out.read_text() + "\n" + text)
    else:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
