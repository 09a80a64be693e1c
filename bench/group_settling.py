"""How many votes settle a similarity group's best photo? Group-contender duels and series vs random pairs.

Run through ``bench/ranking_sim.py --groups`` (the ranking simulation's voters, rating update and model
prior). One simulated group: ``m`` photos of one subject, true quality ``q_i = q_g + spread * z_i``
(``q_g ~ N(0, 1)`` the subject's level, ``spread`` how much the shots differ: near-duplicates differ
little), a model score correlated r with q (`bench.sim_core.World.model_quality`'s formula) as the
prior, and only votes inside the group (the group's own question; in the service its photos also get
placement and neighbour duels, so this counts what the group question costs on its own). Strategies:

  random     random pairs of members, TrueSkill (the baseline);
  contender  gaming.contenders.contender_pair: the pair that does most for "is the leader the best?";
  seriesK    gaming.contenders.contender_series of min(K, m) members, one pick each
             (gaming.series.rate_pick), Plackett-Luce voters (bench.sim_core.series_votes).

A run stops when gaming.contenders.leader_settled says the best is found (the leader with >= 10 votes,
sigma <= 3, and 90% sure that no member beats it by more than the margin), or at the cap. Reported per
cell, over many groups: answers (duel votes or series picks) per group to settle, as quartiles; the
share that settled within the cap; and how often the settled leader is right: the true best, or within
the indifference zone of it (its true quality at most the margin below the best's, the margin mapped
to q through the voters' odds: a skill gap d wins Phi(d / (sqrt 2 beta)) of duels, a q gap x wins
sigmoid(slope x)).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import statistics
from dataclasses import dataclass

import numpy as np
from scipy.special import logit, ndtr

from bench.sim_core import DRAW, LEFT, series_votes, vote
from gaming.contenders import GroupPolicy, contender_pair, contender_series, group_leader, leader_settled
from gaming.ratings import Outcome, Rating, RatingEnv, prior_rating, rate_duel
from gaming.series import rate_pick


@dataclass(frozen=True)
class GroupTask:
    size: int
    spread: float
    slope: float
    r: float
    strategy: str  # "random" | "contender" | "seriesK"
    seed: int
    groups: int
    cap: int  # answers per group before a run gives up
    policy: GroupPolicy
    env: RatingEnv


@dataclass(frozen=True)
class GroupResult:
    task: GroupTask
    answers: tuple[float, ...]  # per group; inf when not settled within the cap
    right: tuple[bool, ...]  # the settled leader is the true best (settled groups only)
    in_zone: tuple[bool, ...]  # ... or within the indifference zone of it


def margin_in_q(policy: GroupPolicy, env: RatingEnv, slope: float) -> float:
    """The indifference margin (skill units) as a gap in true quality q with the same duel odds."""
    p = float(ndtr(policy.margin * env.beta / (math.sqrt(2.0) * env.beta)))
    return float(logit(p)) / slope


def _members(strategy: str, mu: np.ndarray, sigma: np.ndarray, env: RatingEnv, rng: random.Random,
             policy: GroupPolicy) -> list[int] | None:
    m = len(mu)
    if strategy == "random":
        return rng.sample(range(m), 2)
    if strategy == "contender":
        pair = contender_pair(mu, sigma, env, rng, policy)
        return None if pair is None else list(pair)
    return contender_series(mu, sigma, int(strategy.removeprefix("series")), env, rng, policy)


def _answer(q: np.ndarray, members: list[int], mu: np.ndarray, sigma: np.ndarray, slope: float,
            env: RatingEnv, vote_rng: np.random.Generator) -> None:
    """One answer from the voters, rated into mu/sigma in place."""
    if len(members) == 2:
        left, right = members
        outcome = int(vote(q, np.array([left]), np.array([right]), slope, vote_rng)[0])
        result = Outcome.DRAW if outcome == DRAW else Outcome.LEFT if outcome == LEFT else Outcome.RIGHT
        new_l, new_r = rate_duel(Rating(mu[left], sigma[left]), Rating(mu[right], sigma[right]), result, env)
        mu[[left, right]] = [new_l.mu, new_r.mu]
        sigma[[left, right]] = [new_l.sigma, new_r.sigma]
        return
    order = series_votes(q, np.array([members]), slope, vote_rng)[0].tolist()  # best first
    after = rate_pick([Rating(mu[i], sigma[i]) for i in order], 0, env)
    mu[order] = [r.mu for r in after]
    sigma[order] = [r.sigma for r in after]


def run_group(task: GroupTask, index: int) -> tuple[float, bool, bool]:
    """One group until settled: (answers, leader is the true best, leader within the zone)."""
    rng = random.Random(task.seed * 100_003 + index)
    vote_rng = np.random.default_rng([task.seed, index])
    q = vote_rng.normal() + task.spread * vote_rng.normal(size=task.size)
    latent = task.r * q + math.sqrt(1.0 - task.r**2) * vote_rng.normal(size=task.size)
    priors = [prior_rating(float(x), task.env) for x in ndtr(latent)]
    mu = np.array([p.mu for p in priors])
    sigma = np.array([p.sigma for p in priors])
    votes = np.zeros(task.size, dtype=int)
    zone = margin_in_q(task.policy, task.env, task.slope)
    for answers in range(task.cap + 1):
        if leader_settled(mu, sigma, votes, task.env, task.policy):
            leader = group_leader(mu, sigma, task.env)
            return float(answers), bool(q[leader] == q.max()), bool(q[leader] >= q.max() - zone)
        members = _members(task.strategy, mu, sigma, task.env, rng, task.policy)
        if members is None:  # nothing left to learn, yet not settled (two equals at the tau floor)
            break
        _answer(q, members, mu, sigma, task.slope, task.env, vote_rng)
        votes[members] += 1
    return math.inf, False, False


def run(task: GroupTask) -> GroupResult:
    rows = [run_group(task, i) for i in range(task.groups)]
    settled = [r for r in rows if not math.isinf(r[0])]
    return GroupResult(task, tuple(r[0] for r in rows), tuple(r[1] for r in settled), tuple(r[2] for r in settled))


def build_tasks(args: argparse.Namespace, env: RatingEnv) -> list[GroupTask]:
    policy = GroupPolicy(margin=args.group_margin)
    return [
        GroupTask(m, spread, slope, r, strategy, args.first_seed, args.groups_per_cell, args.group_cap * m, policy,
                  env)
        for m in args.group_sizes
        for spread in args.group_spreads
        for slope in args.slopes
        for r in args.r
        for strategy in ["random", "contender", *(f"series{k}" for k in args.group_series)]
    ]


def _quartiles(xs: list[float]) -> str:
    ordered = sorted(xs)
    at = [ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))] for p in (0.25, 0.5, 0.75)]
    return " / ".join("—" if math.isinf(x) else f"{x:.0f}" for x in at)


def table(results: list[GroupResult]) -> str:
    """One row per cell and strategy; the break-even is random pairs' median answers over this row's."""
    lines = [
        "| size | spread | slope | r | strategy | answers to settle (quartiles) | per member (median) "
        "| vs random | settled | leader is best | within zone |",
        "|" + "---|" * 11,
    ]
    baseline: dict[tuple[int, float, float, float], float] = {}
    for res in results:
        t = res.task
        key = (t.size, t.spread, t.slope, t.r)
        median = statistics.median(res.answers)
        if t.strategy == "random":
            baseline[key] = median
        base = baseline.get(key, math.nan)
        ratio = "—" if math.isinf(median) or math.isinf(base) or math.isnan(base) else f"{median / base:.2f}"
        settled = sum(not math.isinf(a) for a in res.answers)
        right = f"{np.mean(res.right):.0%}" if res.right else "—"
        zone = f"{np.mean(res.in_zone):.0%}" if res.in_zone else "—"
        per = "—" if math.isinf(median) else f"{median / t.size:.1f}"
        lines.append(
            f"| {t.size} | {t.spread:g} | {t.slope:g} | {t.r:g} | {t.strategy} | {_quartiles(list(res.answers))} "
            f"| {per} | {ratio} | {settled / len(res.answers):.0%} | {right} | {zone} |"
        )
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--groups", action="store_true", help="the group-settling experiment instead of the ranking")
    ap.add_argument("--group-sizes", type=int, nargs="+", default=[3, 5, 8])
    ap.add_argument("--group-spreads", type=float, nargs="+", default=[0.25, 0.5],
                    help="SD of true quality inside a group (the catalogue's is 1)")
    ap.add_argument("--group-series", type=int, nargs="*", default=[3, 4], help="series sizes to compare")
    ap.add_argument("--group-margin", type=float, default=GroupPolicy().margin, help="indifference margin, in beta")
    ap.add_argument("--group-count", dest="groups_per_cell", type=int, default=200, help="groups per cell")
    ap.add_argument("--group-cap", type=int, default=60, help="answers per member before a group gives up")


def describe(args: argparse.Namespace, env: RatingEnv) -> str:
    policy = dataclasses.replace(GroupPolicy(), margin=args.group_margin)
    zones = ", ".join(f"{margin_in_q(policy, env, s):.2f} at slope {s:g}" for s in args.slopes)
    return (f"{policy}; {args.groups_per_cell} groups per cell; cap {args.group_cap} answers per member. "
            f"The indifference zone in q: {zones}.")
