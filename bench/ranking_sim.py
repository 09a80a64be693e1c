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

Series rounds (``--series``): an answer is one pick among k photos instead of a duel vote, with the
model prior like (d). The anchors and candidate lists are (d)'s; the k - 1 others are drawn from the
list by gaming.contenders.choose_opponents (the duel scores, without replacement); the voters are the
same, extended to k photos (Plackett-Luce, bench/sim_core.py: no DRAW answer). ``pickK`` rates the pick
with gaming.series.rate_pick, ``tiesK`` the same pick as trueskill's free-for-all with the others tied
(gaming.series.rate_order), ``orderK`` a full order. Counted in answers per photo (answers / N; a target
must hold for one more answer per photo); the series table adds each target in answers (player
actions) over (a)'s votes (the goals are 1.2 for (1) and 0.25 for (2)), the break-even, (d)'s answers
over the series', i.e. how many duel answers' time one series answer may take before it is slower, and
the featured target in time against (a)'s votes under three models of an answer's time in duel answers,
for k photos shown: ``hick`` log2(k + 1) / log2(3) (Hick-Hyman: choice time grows with the log of the
choices; a lower bound, photos must also be looked at), ``mid`` (2 + k) / 4 (half a duel's time fixed:
loading, the tap, the next screen; half looking, per photo) and ``linear`` k / 2 (all of it looking, an
upper bound). An order costs its successive picks. A photo's fair share of series is k/N.

``--groups`` runs the group-settling experiment instead (bench/group_settling.py).

    .venv/bin/python bench/ranking_sim.py                 # N = 200, both variants, slopes 1.7/1.0, r 0/.5/.7
    .venv/bin/python bench/ranking_sim.py --full          # N = 200 and 1000
    .venv/bin/python bench/ranking_sim.py --r 0.7 --strategies a d --series pick3 pick4 pick5 ties4 order4
    .venv/bin/python bench/ranking_sim.py --groups --r 0.7
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

from bench import group_settling
from bench.sim_core import (
    World,
    disjoint_groups,
    elo_update,
    make_world,
    series_votes,
    spearman,
    top_recall,
    ts_update,
    vote,
)
from gaming.contenders import choose_opponents
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
from gaming.series import MAX_SERIES, pick_ranks, rate_order, rate_pick

RHO_TARGET = 0.9
TOP_TARGET = 0.8
HOLD = 1.0  # votes per photo a target must hold to count as reached
OUT = Path(__file__).resolve().parent / "out"
SERIES_KINDS = ("pick", "ties", "order")  # strategies "pick4", "ties4", "order4": see the module docstring


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


@dataclass
class _State:
    """What a run carries from batch to batch."""

    duels: np.ndarray  # how many duels (or series) each photo was in
    mu: np.ndarray
    sigma: np.ndarray
    elo: np.ndarray
    votes: int = 0  # answers: a duel vote or a series pick
    neighbour_slots: int = 0  # opponents drawn from the anchor's k-NN list (either way)
    opponent_slots: int = 0  # opponents drawn by our matchmaking

    @classmethod
    def start(cls, world: World, task: Task) -> _State:
        env = task.env
        mu, sigma = np.full(world.n, env.mu), np.full(world.n, env.sigma)
        if task.strategy in ("d", "e") or series_kind(task.strategy) is not None:
            priors = [prior_rating(float(x), env) for x in world.model_quality(task.r)]
            mu = np.array([p.mu for p in priors])
            sigma = np.array([p.sigma for p in priors])
        return cls(np.zeros(world.n, dtype=int), mu, sigma, np.full(world.n, 1500.0))

    def score(self, task: Task) -> np.ndarray:
        return self.elo if task.strategy == "a" else self.mu - task.env.k * self.sigma


def series_kind(strategy: str) -> tuple[str, int] | None:
    """("pick" | "ties" | "order", k) for a series strategy such as "pick4"; None for a duel strategy."""
    for kind in SERIES_KINDS:
        if strategy.startswith(kind) and strategy[len(kind):].isdigit():
            return kind, int(strategy[len(kind):])
    return None


def run(task: Task) -> RunResult:
    started = time.perf_counter()
    world = make_world(task.n, task.variant, task.seed)
    vote_rng = np.random.default_rng(task.seed * 1000 + 7)
    rng = random.Random(task.seed * 1000 + 11)
    batch = max(1, world.n // 20)
    state = _State.start(world, task)
    tracker = _Tracker()
    step = _pair_step if series_kind(task.strategy) is None else _series_step
    while state.votes < task.cap * world.n:
        step(world, task, state, batch, rng, vote_rng)
        if tracker.update(state.votes / world.n, state.score(task), world.q) and not task.trace:
            break
    return RunResult(
        task=task,
        votes_rho=tracker.held["rho"],
        votes_top=tracker.held["top"],
        first_rho=tracker.first["rho"],
        first_top=tracker.first["top"],
        max_share=float(state.duels.max() / state.votes),
        neighbour_fraction=state.neighbour_slots / state.opponent_slots if state.opponent_slots else math.nan,
        seconds=time.perf_counter() - started,
        trace=tuple(tracker.trace) if task.trace else (),
    )


def _pair_step(
    world: World, task: Task, state: _State, batch: int, rng: random.Random, vote_rng: np.random.Generator
) -> None:
    """One batch of duels issued from the same ratings, then their votes applied in order."""
    n, env = world.n, task.env
    if task.strategy in ("a", "b"):
        left = vote_rng.integers(n, size=batch)
        right = (left + vote_rng.integers(1, n, size=batch)) % n  # any other photo
    else:
        policy = task.policy
        if task.strategy == "e":
            policy = dataclasses.replace(policy, placement=0.0, placement_first=0)
        left, right, from_knn = _our_pairs(world, state.mu, state.sigma, state.duels, batch, env, policy, rng)
        state.neighbour_slots += from_knn
        state.opponent_slots += len(left)
    outcome = vote(world.q, left, right, task.slope, vote_rng)
    for group in disjoint_groups(left, right):  # in order; vectorised where pairs do not overlap
        if task.strategy == "a":
            state.elo = elo_update(state.elo, left[group], right[group], outcome[group])
        else:
            state.mu, state.sigma = ts_update(state.mu, state.sigma, left[group], right[group], outcome[group], env)
    np.add.at(state.duels, left, 1)
    np.add.at(state.duels, right, 1)
    state.votes += len(left)


def _series_step(
    world: World, task: Task, state: _State, batch: int, rng: random.Random, vote_rng: np.random.Generator
) -> None:
    """One batch of series issued from the same ratings, then each answer rated by gaming.series."""
    kind_size = series_kind(task.strategy)
    assert kind_size is not None
    kind, size = kind_size
    members, from_knn = _our_series(world, state.mu, state.sigma, state.duels, batch, task.env, task.policy, rng,
                                     size)
    for row in series_votes(world.q, members, task.slope, vote_rng):  # each row best first
        before = [Rating(float(state.mu[i]), float(state.sigma[i])) for i in row]
        if kind == "pick":
            after = rate_pick(before, 0, task.env)
        elif kind == "ties":  # the pick as trueskill's free-for-all, the others tied at rank 1
            after = rate_order(before, list(pick_ranks(size, 0)), task.env)
        else:
            after = rate_order(before, list(range(size)), task.env)
        state.mu[row] = [r.mu for r in after]
        state.sigma[row] = [r.sigma for r in after]
    np.add.at(state.duels, members.ravel(), 1)
    state.votes += len(members)
    state.neighbour_slots += from_knn
    state.opponent_slots += len(members) * (size - 1)


def _candidates(
    world: World,
    a: int,
    anchor: RatedPhoto,
    near_cut: np.ndarray,
    boundary: float,
    env: RatingEnv,
    policy: MatchPolicy,
    rng: random.Random,
) -> list[tuple[int, float]]:
    """The anchor's candidate opponents and their similarity, as the duel service draws them."""
    if wants_placement(anchor, rng, policy):  # random photos of the category; similarity unknown: 1.0
        return [(j, 1.0) for j in rng.sample(range(world.n), min(world.n, world.knn.shape[1])) if j != a]
    if wants_boundary_duel(anchor, boundary, env, rng, policy):  # the photos nearest the cut
        return [(int(j), 1.0) for j in near_cut if j != a]
    return list(zip(world.knn[a].tolist(), world.knn_sim[a].tolist(), strict=True))


def _rated(world: World, mu: np.ndarray, sigma: np.ndarray, duels: np.ndarray, i: int) -> RatedPhoto:
    return RatedPhoto(str(i), Rating(float(mu[i]), float(sigma[i])), int(duels[i]), str(world.owner[i]), None)


def _is_neighbour(world: World, a: int, b: int) -> bool:
    """Either photo is in the other's k-NN list."""
    return bool(np.any(world.knn[a] == b) or np.any(world.knn[b] == a))


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
    for a in anchors:
        owner = world.owner[a]
        anchor = _rated(world, mu, sigma, duels, a)
        listed = _candidates(world, a, anchor, near_cut, boundary, env, policy, rng)
        cands = [(_rated(world, mu, sigma, duels, j), s) for j, s in listed if world.owner[j] != owner]
        chosen = choose_opponent(anchor, cands, boundary, env, rng, policy=policy)
        if chosen is None:  # the service's fallback: a random opponent (same category) outside the list
            pool = [j for j in range(world.n) if j != a and world.owner[j] != owner]
            if not pool:
                continue
            opp = rng.choice(pool)
        else:
            opp = int(chosen.id)
        from_knn += _is_neighbour(world, a, opp)
        # left/right at random, as the service records them
        first, second = (a, opp) if rng.random() < 0.5 else (opp, a)
        left.append(first)
        right.append(second)
    return np.array(left, dtype=int), np.array(right, dtype=int), from_knn


def _our_series(
    world: World,
    mu: np.ndarray,
    sigma: np.ndarray,
    duels: np.ndarray,
    batch: int,
    env: RatingEnv,
    policy: MatchPolicy,
    rng: random.Random,
    size: int,
) -> tuple[np.ndarray, int]:
    """One batch of series: the anchors and candidate lists of :func:`_our_pairs`, then ``size - 1``
    opponents by gaming.contenders.choose_opponents (random photos of the category fill a short list)."""
    boundary = featured_boundary_array(mu, policy.top_fraction)
    anchors = choose_anchors(anchor_priorities(mu, sigma, boundary, env, policy), batch, rng, explore=policy.explore)
    near_cut = _near_cut(mu, boundary, policy.boundary_pool)
    rows: list[list[int]] = []
    from_knn = 0
    for a in anchors:
        owner = world.owner[a]
        anchor = _rated(world, mu, sigma, duels, a)
        listed = _candidates(world, a, anchor, near_cut, boundary, env, policy, rng)
        cands = [(_rated(world, mu, sigma, duels, j), s) for j, s in listed if world.owner[j] != owner]
        row = [a] + [int(p.id) for p in choose_opponents(anchor, cands, size - 1, boundary, env, rng, policy=policy)]
        pool = [j for j in range(world.n) if j not in row and world.owner[j] != owner]
        row += rng.sample(pool, min(len(pool), size - len(row)))
        if len(row) < size:
            continue
        from_knn += sum(_is_neighbour(world, a, j) for j in row[1:])
        rows.append(row)
    return np.array(rows, dtype=int).reshape(-1, size), from_knn


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


def _series_name(value: str) -> str:
    kind_size = series_kind(value)
    if kind_size is None or not 2 <= kind_size[1] <= MAX_SERIES:
        raise argparse.ArgumentTypeError(f"not a series strategy: {value!r} (e.g. pick4, ties4, order4)")
    return value


def build_tasks(args: argparse.Namespace, policy: MatchPolicy, env: RatingEnv) -> list[Task]:
    tasks = []
    for n in args.n:
        for variant in args.variants:
            for slope in args.slopes:
                for seed in range(args.first_seed, args.first_seed + args.seeds):
                    for s in [*args.strategies, *args.series]:
                        rs = args.r if s == "d" or series_kind(s) else [max(args.r)] if s == "e" else [math.nan]
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


# How long one answer takes, in duel answers, by the number of photos shown (see the module docstring).
TIME_MODELS = {
    "hick": lambda k: math.log2(k + 1) / math.log2(3),  # Hick-Hyman: a + b log2(choices + 1), a = 0
    "mid": lambda k: (2 + k) / 4,  # half of a duel's time fixed (load, tap, next), half looking per photo
    "linear": lambda k: k / 2,  # all of it looking, photo by photo
}


def answer_time(strategy: str, model: str) -> float:
    """Time of one answer in duel answers; an order costs its successive picks (best of k, then of k-1...)."""
    kind_size = series_kind(strategy)
    if kind_size is None:
        return 1.0
    kind, k = kind_size
    cost = TIME_MODELS[model]
    return sum(cost(m) for m in range(2, k + 1)) if kind == "order" else cost(k)


def series_table(results: list[RunResult], args: argparse.Namespace) -> str:
    """Series strategies against (d), pairwise duels with the same prior, and (a), random pairs + Elo:
    answers per photo, the break-even time of a series answer (d's answers over the series', in duel
    answers: below it the series is faster), and (2) in time per (a)'s votes under each time model."""
    by = _by_group(results)
    models = list(TIME_MODELS)
    lines = [
        "| N | neighbourhoods | slope | r | strategy | (1) answers | (2) answers | (1) answers / a | (2) answers / a "
        f"| (1) break-even | (2) break-even | (2) time / a: {' / '.join(models)} | max share | neighbour opponents |",
        "|" + "---|" * 14,
    ]
    for n in args.n:
        for v in args.variants:
            for s in args.slopes:
                for r in args.r:

                    def med(strat: str, attr: str, n=n, v=v, s=s, r=r) -> float:
                        rows = by.get(_group_key(n, v, s, strat, r), [])
                        return _median([getattr(x, attr) for x in rows]) if rows else math.nan

                    d_rho, d_top = med("d", "votes_rho"), med("d", "votes_top")
                    a_rho, a_top = med("a", "votes_rho"), med("a", "votes_top")
                    for strat in ["d", *args.series]:
                        rho, top = med(strat, "votes_rho"), med(strat, "votes_top")
                        times = " / ".join(_ratio(top * answer_time(strat, m), a_top) for m in models)
                        lines.append(
                            f"| {n} | {v} | {s:g} | {r:g} | {strat} | {_fmt(rho)} | {_fmt(top)} | {_ratio(rho, a_rho)} "
                            f"| {_ratio(top, a_top)} | {_ratio(d_rho, rho)} "
                            f"| {_ratio(d_top, top)} | {times} | {med(strat, 'max_share'):.1%} "
                            f"| {med(strat, 'neighbour_fraction'):.0%} |"
                        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[200])
    ap.add_argument("--variants", nargs="+", default=["indep", "corr"], choices=["indep", "corr"])
    ap.add_argument("--slopes", type=float, nargs="+", default=[1.7, 1.0])
    ap.add_argument("--r", type=float, nargs="+", default=[0.0, 0.5, 0.7])
    ap.add_argument("--strategies", nargs="+", default=list("abcde"), choices=list("abcde"))
    ap.add_argument("--series", nargs="*", default=[], type=_series_name, metavar="KIND+SIZE",
                    help="series strategies with the model prior, e.g. pick3 pick4 pick5 ties4 order4")
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
    ap.add_argument("--out", type=Path, default=None, help="default: bench/out/ranking_sim.md (group_settling.md)")
    group_settling.add_arguments(ap)
    args = ap.parse_args(argv)
    if args.full:
        args.n = [200, 1000]
    overrides = {k: int(v) if k in _INT_FIELDS else float(v) for k, v in (x.split("=") for x in args.policy)}
    policy = dataclasses.replace(DEFAULT_POLICY, **overrides)
    env = dataclasses.replace(RatingEnv(), **{k: float(v) for k, v in (x.split("=") for x in args.env)})
    command = " ".join(["`.venv/bin/python", "bench/ranking_sim.py", *(argv if argv is not None else sys.argv[1:])])
    if args.groups:
        return _groups(args, env, command + "`")
    args.out = args.out or OUT / "ranking_sim.md"
    tasks = build_tasks(args, policy, env)
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        # longest first (big N, policies that may run to the cap) so the workers finish together
        tasks.sort(key=lambda t: (-t.n, "ceadb".find(t.strategy), t.variant != "corr"))
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
    if args.series:
        text += "\n\nSeries rounds (held):\n\n" + series_table(results, args)
    header = (
        f"{command}`"
        f" — {len(tasks)} runs in {elapsed:.0f} s; policy {policy}; env prior span {env.prior_mu_span:g},"
        f" prior sigma {env.prior_sigma:g}. Votes per photo = all votes / N (each photo is in 2x as many"
        f" duels on average); a photo's fair share of duels is 2/N (1% at N = 200, 0.2% at N = 1000).\n\n"
    )
    print(header + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(header + text + "\n")
    return 0


def _groups(args: argparse.Namespace, env: RatingEnv, command: str) -> int:
    """The group-settling experiment (bench/group_settling.py)."""
    tasks = group_settling.build_tasks(args, env)
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(group_settling.run, tasks, chunksize=1))
    text = (f"{command} — {len(tasks)} cells in {time.perf_counter() - started:.0f} s; "
            f"{group_settling.describe(args, env)}\n\n{group_settling.table(results)}\n")
    print(text)
    out = args.out or OUT / "group_settling.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
