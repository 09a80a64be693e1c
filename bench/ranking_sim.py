"""How many votes does a ranking need? Random pairs vs our matchmaking, with and without the model prior.

Simulated photos with a hidden true quality q ~ N(0, 1), visual clusters with k-NN lists (k = 24),
quality independent of the clusters ("indep") or half its variance shared within a cluster ("corr"),
a model score correlated r with q, and Bradley-Terry voters, P(i beats j) = sigmoid(slope * (q_i -
q_j)), who answer DRAW up to 10% of the time on even pairs (bench/sim_core.py). Strategies:

  (a) random pairs + Elo (K = 32), the naive baseline, ranked by Elo rating;
  (b) random pairs + TrueSkill;   (c) our matchmaking + TrueSkill;   (d) (c) with the model prior;
  (e) (d) without placement duels (neighbour duels only), to show what placement buys.
  TrueSkill strategies rank by the conservative skill mu - k*sigma, i.e. by the unrounded 1-10 score,
  which is what the featured list and leaderboards sort by.

Pairs are issued in batches of N/20 from the same ratings (many players asking at once; a photo may
be in several open duels), then the votes update the ratings in order. (c)-(e) call
gaming.matchmaking's functions, the ones the duel service calls; the rating update is
gaming.ratings' TrueSkill update in vectorised closed form. Players are an anonymous crowd, so
"pairs this player judged" never filters; the anchor owner's other photos are filtered out.

Measured per run, checked after every batch: votes per photo (all votes / N) until (1) Spearman(score,
q) >= 0.9 and (2) the featured set (top 10% by score) holds >= 80% of the true top 10%. Headline:
the first time a target is reached *and held* for the next vote per photo (a lucky snapshot of a
noisy ranking is not a featured list players can trust); the first crossing is reported as well.
Also: the largest share of all duels one photo took, and the share of duels between k-NN neighbours
(either photo in the other's list; the rest are placement or fallback pairs). Medians over seeds;
"—" when the median run did not get there within the cap. The featured target has a long tail, so a
second table gives each strategy's quartiles over the seeds: with 10 seeds a median can be luck.

    .venv/bin/python bench/ranking_sim.py                 # N = 200, both variants, slopes 1.7/1.0, r 0/.5/.7
    .venv/bin/python bench/ranking_sim.py --full          # N = 200 and 1000
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.sim_core import World, disjoint_groups, elo_update, make_world, spearman, top_recall, ts_update, vote
from gaming.featured import featured_boundary_array
from gaming.matchmaking import (
    DEFAULT_POLICY,
    MatchPolicy,
    RatedPhoto,
    anchor_priorities,
    choose_anchors,
    choose_opponent,
    wants_boundary_duel,
    wants_placement,
)
from gaming.ratings import Rating, RatingEnv, prior_rating

RHO_TARGET = 0.9
TOP_TARGET = 0.8
HOLD = 1.0  # votes per photo a target must hold to count as reached


@dataclass(frozen=True)
class Task:
    n: int
    variant: str
    slope: float
    seed: int
    strategy: str  # "a" | "b" | "c" | "d" | "e"
    r: float  # model correlation; only (d) and (e) use it
    cap: float  # votes per photo
    policy: MatchPolicy
    env: RatingEnv
    trace: bool = False  # run to the cap and keep (votes/photo, rho, recall) at every check


@dataclass(frozen=True)
class RunResult:
    task: Task
    votes_rho: float  # held; inf: not reached within the cap
    votes_top: float
    first_rho: float  # first crossing
    first_top: float
    max_share: float
    neighbour_fraction: float  # nan for random strategies
    seconds: float
    trace: tuple[tuple[float, float, float], ...] = ()


class _Tracker:
    """When each target is first met, and when it is first met for good: held at every check for the
    next ``HOLD`` votes per photo. A lucky snapshot of a noisy ranking is not a featured list that
    players can trust, so the held time is the headline number; the first crossing is reported too."""

    def __init__(self) -> None:
        self.first = {"rho": math.inf, "top": math.inf}
        self.held = {"rho": math.inf, "top": math.inf}
        self._since = {"rho": math.inf, "top": math.inf}
        self.trace: list[tuple[float, float, float]] = []

    def update(self, votes_per_photo: float, score: np.ndarray, q: np.ndarray) -> bool:
        """Record one check; True once both targets are held."""
        values = {"rho": (spearman(score, q), RHO_TARGET), "top": (top_recall(score, q), TOP_TARGET)}
        self.trace.append((votes_per_photo, values["rho"][0], values["top"][0]))
        for key, (value, target) in values.items():
            if not math.isinf(self.held[key]):
                continue
            if value >= target:
                self.first[key] = min(self.first[key], votes_per_photo)
                self._since[key] = min(self._since[key], votes_per_photo)
                if votes_per_photo - self._since[key] >= HOLD - 1e-9:
                    self.held[key] = self._since[key]
            else:
                self._since[key] = math.inf
        return not any(math.isinf(v) for v in self.held.values())


def run(task: Task) -> RunResult:
    started = time.perf_counter()
    world = make_world(task.n, task.variant, task.seed)
    n, env = world.n, task.env
    vote_rng = np.random.default_rng(task.seed * 1000 + 7)
    rng = random.Random(task.seed * 1000 + 11)
    batch = max(1, n // 20)
    duels = np.zeros(n, dtype=int)
    tracker = _Tracker()
    votes = 0
    neighbour_votes = 0
    if task.strategy == "a":
        elo = np.full(n, 1500.0)
    else:
        mu, sigma = np.full(n, env.mu), np.full(n, env.sigma)
        if task.strategy in ("d", "e"):
            priors = [prior_rating(float(x), env) for x in world.model_quality(task.r)]
            mu = np.array([p.mu for p in priors])
            sigma = np.array([p.sigma for p in priors])
    while votes < task.cap * n:
        if task.strategy in ("a", "b"):
            left = vote_rng.integers(n, size=batch)
            right = (left + vote_rng.integers(1, n, size=batch)) % n  # any other photo
        else:
            policy = task.policy
            if task.strategy == "e":
                policy = dataclasses.replace(policy, placement=0.0, placement_first=0)
            left, right, from_knn = _our_pairs(world, mu, sigma, duels, batch, env, policy, rng)
            neighbour_votes += from_knn
        outcome = vote(world.q, left, right, task.slope, vote_rng)
        for group in disjoint_groups(left, right):  # in order; vectorised where pairs do not overlap
            if task.strategy == "a":
                elo = elo_update(elo, left[group], right[group], outcome[group])
            else:
                mu, sigma = ts_update(mu, sigma, left[group], right[group], outcome[group], env)
        score = elo if task.strategy == "a" else mu - env.k * sigma
        np.add.at(duels, left, 1)
        np.add.at(duels, right, 1)
        votes += len(left)
        if tracker.update(votes / n, score, world.q) and not task.trace:
            break
    return RunResult(
        task=task,
        votes_rho=tracker.held["rho"],
        votes_top=tracker.held["top"],
        first_rho=tracker.first["rho"],
        first_top=tracker.first["top"],
        max_share=float(duels.max() / votes),
        neighbour_fraction=neighbour_votes / votes if task.strategy in "cde" else math.nan,
        seconds=time.perf_counter() - started,
        trace=tuple(tracker.trace) if task.trace else (),
    )


def _our_pairs(
    world: World,
    mu: np.ndarray,
    sigma: np.ndarray,
    duels: np.ndarray,
    batch: int,
    env: RatingEnv,
    policy: MatchPolicy,
    rng: random.Random,
) -> tuple[np.ndarray, np.ndarray, int]:
    """One batch of pairs chosen by gaming.matchmaking from the same ratings, as the duel service would."""
    boundary = featured_boundary_array(mu, policy.top_fraction)
    priorities = anchor_priorities(mu, sigma, boundary, env, policy)
    anchors = choose_anchors(priorities, batch, rng, explore=policy.explore)
    left: list[int] = []
    right: list[int] = []
    from_knn = 0
    near_cut = _near_cut(mu, boundary, policy.boundary_pool)

    def photo(i: int) -> RatedPhoto:
        return RatedPhoto(str(i), Rating(float(mu[i]), float(sigma[i])), int(duels[i]), str(world.owner[i]), None)

    for a in anchors:
        owner = world.owner[a]
        anchor = photo(a)
        if wants_placement(anchor, rng, policy):  # random photos of the category; similarity unknown: 1.0
            listed = [(j, 1.0) for j in rng.sample(range(world.n), min(world.n, world.knn.shape[1])) if j != a]
        elif wants_boundary_duel(anchor, boundary, env, rng, policy):  # the photos nearest the cut
            listed = [(int(j), 1.0) for j in near_cut if j != a]
        else:
            listed = list(zip(world.knn[a].tolist(), world.knn_sim[a].tolist(), strict=True))
        cands = [(photo(j), s) for j, s in listed if world.owner[j] != owner]
        chosen = choose_opponent(anchor, cands, boundary, env, rng, policy=policy)
        if chosen is None:  # the service's fallback: a random opponent (same category) outside the list
            pool = [j for j in range(world.n) if j != a and world.owner[j] != owner]
            if not pool:
                continue
            opp = rng.choice(pool)
        else:
            opp = int(chosen.id)
        # a neighbour duel: either photo is in the other's k-NN list
        from_knn += bool(np.any(world.knn[a] == opp) or np.any(world.knn[opp] == a))
        # left/right at random, as the service records them
        first, second = (a, opp) if rng.random() < 0.5 else (opp, a)
        left.append(first)
        right.append(second)
    return np.array(left, dtype=int), np.array(right, dtype=int), from_knn


def _near_cut(mu: np.ndarray, boundary: float, size: int) -> np.ndarray:
    """The photos nearest the featured cut, half from each side, as the duel service reads them."""
    order = np.argsort(mu, kind="stable")
    cut = int(np.searchsorted(mu[order], boundary, side="left"))
    return np.concatenate([order[cut : cut + size // 2], order[max(0, cut - size // 2) : cut]])


# --- the grid and the table -------------------------------------------------------------------------------


def _median(xs: list[float]) -> float:
    return statistics.median(xs)  # inf counts as "not reached", so a median of inf means most did not


def _fmt(x: float) -> str:
    return "—" if math.isinf(x) or math.isnan(x) else f"{x:.1f}"


def _ratio(num: float, den: float) -> str:
    if math.isinf(num) or math.isnan(num) or math.isinf(den) or math.isnan(den) or den == 0:
        return "—"
    return f"{num / den:.2f}"


def build_tasks(args: argparse.Namespace, policy: MatchPolicy, env: RatingEnv) -> list[Task]:
    tasks = []
    for n in args.n:
        for variant in args.variants:
            for slope in args.slopes:
                for seed in range(args.first_seed, args.first_seed + args.seeds):
                    for s in args.strategies:
                        rs = args.r if s == "d" else [max(args.r)] if s == "e" else [math.nan]
                        for r in rs:
                            cap = args.random_cap if s in "ab" else args.cap
                            tasks.append(Task(n, variant, slope, seed, s, r, cap, policy, env, trace=args.to_cap))
    return tasks


_INT_FIELDS = {"placement_first", "boundary_pool"}
GroupKey = tuple[int, str, float, str, float | None]


def _group_key(n: int, variant: str, slope: float, strategy: str, r: float) -> GroupKey:
    """Runs that share a row: (a)-(c) do not use the model score, so r does not split them."""
    return (n, variant, slope, strategy, None if strategy in "abc" else r)


def _by_group(results: list[RunResult]) -> dict[GroupKey, list[RunResult]]:
    by: dict[GroupKey, list[RunResult]] = {}
    for res in results:
        t = res.task
        by.setdefault(_group_key(t.n, t.variant, t.slope, t.strategy, t.r), []).append(res)
    return by


def table(results: list[RunResult], args: argparse.Namespace, rho_attr: str, top_attr: str) -> str:
    by = _by_group(results)

    def med(n, v, s, strat, r, attr):
        rows = by.get(_group_key(n, v, s, strat, r), [])
        return _median([getattr(x, attr) for x in rows]) if rows else math.nan

    lines = [
        "| N | neighbourhoods | slope | r | (1) a | (1) b | (1) c | (1) d | (1) d/a "
        "| (2) a | (2) b | (2) c | (2) d | (2) d/a | max share c / d | neighbour duels c / d | goal |",
        "|" + "---|" * 17,
    ]
    for n in args.n:
        for v in args.variants:
            for s in args.slopes:
                for r in args.r:
                    rho = {k: med(n, v, s, k, r, rho_attr) for k in "abcd"}
                    top = {k: med(n, v, s, k, r, top_attr) for k in "abcd"}
                    share_c, share_d = (med(n, v, s, k, r, "max_share") for k in "cd")
                    nb_c, nb_d = (med(n, v, s, k, r, "neighbour_fraction") for k in "cd")
                    ok_top = not math.isinf(top["d"]) and top["d"] <= top["a"] / 4
                    ok_rho = not math.isinf(rho["d"]) and rho["d"] <= 1.2 * rho["a"]
                    goal = "met" if ok_top and ok_rho else ("(2) only" if ok_top else ("(1) only" if ok_rho else "no"))
                    lines.append(
                        f"| {n} | {v} | {s:g} | {r:g} | "
                        + " | ".join(_fmt(rho[k]) for k in "abcd")
                        + f" | {_ratio(rho['d'], rho['a'])} | "
                        + " | ".join(_fmt(top[k]) for k in "abcd")
                        + f" | {_ratio(top['d'], top['a'])} | {share_c:.1%} / {share_d:.1%} "
                        f"| {nb_c:.0%} / {nb_d:.0%} | {goal} |"
                    )
    return "\n".join(lines)


def _quartiles(xs: list[float]) -> str:
    """Lower quartile - median - upper quartile ("—" for a quartile the runs did not reach)."""
    if not xs:
        return "—"
    ordered = sorted(xs)
    lower, upper = (ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] for q in (0.25, 0.75))
    at = [lower, _median(ordered), upper]  # the middle one as in the headline table
    return " / ".join(_fmt(x) for x in at)


def spread(results: list[RunResult], args: argparse.Namespace) -> str:
    """How much the per-seed figures scatter around the medians of the headline table: the featured
    target in particular has a long tail (a run whose recall sits at 0.75 can stay there for tens of
    votes per photo), so a median over few seeds moves a lot from one set of seeds to the next."""
    lines = [
        "| N | neighbourhoods | slope | r | strategy | (1) quartiles | (2) quartiles | runs |",
        "|" + "---|" * 8,
    ]

    def order(item: tuple[GroupKey, list[RunResult]]) -> tuple[int, str, float, float, str]:
        n, v, s, strat, r = item[0]
        return (n, v, -s, -1.0 if r is None else r, strat)

    for (n, v, s, strat, r), rows in sorted(_by_group(results).items(), key=order):
        lines.append(
            f"| {n} | {v} | {s:g} | {'—' if r is None else f'{r:g}'} | {strat} "
            f"| {_quartiles([x.votes_rho for x in rows])} | {_quartiles([x.votes_top for x in rows])} | {len(rows)} |"
        )
    return "\n".join(lines)


def ablation(results: list[RunResult], args: argparse.Namespace) -> str:
    """(d) with placement duels vs (e) neighbour duels only, at the strongest model prior."""
    r = max(args.r)
    lines = [
        "| N | neighbourhoods | slope | (1) a | (1) d | (1) e | (2) a | (2) d | (2) e | neighbour duels d / e |",
        "|" + "---|" * 10,
    ]
    for n in args.n:
        for v in args.variants:
            for s in args.slopes:

                def med(strat: str, attr: str, n=n, v=v, s=s) -> float:
                    rows = [
                        x
                        for x in results
                        if (x.task.n, x.task.variant, x.task.slope, x.task.strategy) == (n, v, s, strat)
                        and (strat == "a" or x.task.r == r)
                    ]
                    return _median([getattr(x, attr) for x in rows]) if rows else math.nan

                lines.append(
                    f"| {n} | {v} | {s:g} | "
                    + " | ".join(_fmt(med(k, "votes_rho")) for k in "ade")
                    + " | "
                    + " | ".join(_fmt(med(k, "votes_top")) for k in "ade")
                    + f" | {med('d', 'neighbour_fraction'):.0%} / {med('e', 'neighbour_fraction'):.0%} |"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[200])
    ap.add_argument("--variants", nargs="+", default=["indep", "corr"], choices=["indep", "corr"])
    ap.add_argument("--slopes", type=float, nargs="+", default=[1.7, 1.0])
    ap.add_argument("--r", type=float, nargs="+", default=[0.0, 0.5, 0.7])
    ap.add_argument("--strategies", nargs="+", default=list("abcde"), choices=list("abcde"))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds run from here (another set: another sample)")
    ap.add_argument("--cap", type=float, default=60.0, help="votes per photo before a (c)-(e) run gives up")
    ap.add_argument("--random-cap", type=float, default=120.0, help="the same for (a)/(b) (cheap, slow to converge)")
    ap.add_argument("--to-cap", action="store_true",
                    help="run every run to its cap: the duel shares then describe a long run, not the start")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--full", action="store_true", help="the full grid: N = 200 and 1000")
    ap.add_argument("--policy", nargs="*", default=[], metavar="FIELD=VALUE", help="override MatchPolicy fields")
    ap.add_argument("--env", nargs="*", default=[], metavar="FIELD=VALUE", help="override RatingEnv fields")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "ranking_sim.md")
    args = ap.parse_args(argv)
    if args.full:
        args.n = [200, 1000]
    overrides = {k: int(v) if k in _INT_FIELDS else float(v) for k, v in (x.split("=") for x in args.policy)}
    policy = dataclasses.replace(DEFAULT_POLICY, **overrides)
    env = dataclasses.replace(RatingEnv(), **{k: float(v) for k, v in (x.split("=") for x in args.env)})
    tasks = build_tasks(args, policy, env)
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        # longest first (big N, policies that may run to the cap) so the workers finish together
        tasks.sort(key=lambda t: (-t.n, "ceadb".index(t.strategy), t.variant != "corr"))
        results = list(pool.map(run, tasks, chunksize=1))
    elapsed = time.perf_counter() - started
    text = (
        f"Reached and held for {HOLD:g} vote/photo (headline):\n\n"
        + table(results, args, "votes_rho", "votes_top")
        + "\n\nFirst crossing:\n\n"
        + table(results, args, "first_rho", "first_top")
    )
    text += "\n\nSpread over seeds (held; lower quartile / median / upper quartile):\n\n" + spread(results, args)
    if "e" in args.strategies and {"a", "d"} <= set(args.strategies):
        text += f"\n\nPlacement duels, r = {max(args.r):g} (held):\n\n" + ablation(results, args)
    header = (
        f"`{' '.join(['.venv/bin/python', 'bench/ranking_sim.py', *(argv if argv is not None else sys.argv[1:])])}`"
        f" — {len(tasks)} runs in {elapsed:.0f} s; policy {policy}; env prior span {env.prior_mu_span:g},"
        f" prior sigma {env.prior_sigma:g}. Votes per photo = all votes / N (each photo is in 2x as many"
        f" duels on average); a photo's fair share of duels is 2/N (1% at N = 200, 0.2% at N = 1000).\n\n"
    )
    print(header + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(header + text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
