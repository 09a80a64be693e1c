"""Ballot stuffers among honest voters: ranking accuracy and the stuffed owner's lift, detector off and on.

60 photos of 15 owners (q ~ N(0, 1)), 60 voters casting 40 votes each in random order; 0, 5 or 10 % of
the voters are stuffers for owner0 (they redraw until one of owner0's photos is in the duel and always
pick it), the others are honest Bradley-Terry voters (bench/sim_core.py's slope 1.7), a quarter of them
noisy (30 % of answers at random) and a quarter with a 55 % LEFT habit. Pairs are what matchmaking
offers: a random anchor against one of the 8 closest-rated photos of another owner. Votes are weighed
like the service's (gaming/vote_weights.py: new accounts ramp from 0.5 over 20 votes) and rated with
gaming.ratings' TrueSkill update.

Detector on: every 100 votes the screening (gaming/vote_integrity.py, alpha = 1e-3) runs over every
voter not yet flagged, against the ratings so far and the other voters' pick rate per owner (as the
chore does); a flagged voter's later votes weigh 0, and at the end every vote is weighed again by the
decisions (what `photoduel ratings rebuild` does). Measured per run: Spearman(mu, q) over all photos;
owner0's mean mu minus that of the same seed's run without stuffers, in units of its photos' sigma;
the share of stuffers flagged; the share of honest voters flagged (the false positives), and when
(votes into the run) the stuffers were flagged.

    .venv/bin/python bench/ballot_stuffing.py            # 8 seeds, writes bench/results/ballot_stuffing.md
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.sim_core import spearman
from gaming.ratings import Outcome, Rating, RatingEnv, win_probability
from gaming.vote_integrity import ScreeningPolicy, VoteView, screen_voter
from gaming.vote_weights import VoteWeighting, rate_weighted

ENV = RatingEnv()
SLOPE = 1.7
N_PHOTOS, N_VOTERS, VOTES_EACH, SCREEN_EVERY = 60, 60, 40, 100

Vote = tuple[str, int, int, Outcome, int]  # player, left, right, choice, history


def _kind(voter: int, stuffers: int) -> str:
    if voter < stuffers:
        return "stuffer"
    return ("honest", "noisy", "left-habit", "honest")[voter % 4]


def _pick(kind: str, p_anchor: float, anchor_left: bool, rng: random.Random) -> Outcome:
    if kind == "stuffer":
        picks_anchor = True
    elif kind == "noisy" and rng.random() < 0.3:
        picks_anchor = rng.random() < 0.5
    elif kind == "left-habit" and rng.random() < 0.1:
        return Outcome.LEFT
    else:
        picks_anchor = rng.random() < p_anchor
    return Outcome.LEFT if picks_anchor == anchor_left else Outcome.RIGHT


def _owner_rates(log: list[Vote], voter: str, owner: list[str]) -> dict[str, float]:
    """The other voters' pick rate per owner in duels against other owners (what the chore computes)."""
    won: Counter[str] = Counter()
    met: Counter[str] = Counter()
    for player, left, right, choice, _ in log:
        if player == voter or choice is Outcome.DRAW:
            continue
        winner = left if choice is Outcome.LEFT else right
        for photo in (left, right):
            met[owner[photo]] += 1
        won[owner[winner]] += 1
    return {o: (won[o] + 1) / (met[o] + 2) for o in met}


def _screen(log: list[Vote], flagged: dict[str, int], ratings: list[Rating], owner: list[str],
            policy: ScreeningPolicy) -> None:
    for voter in {p for p, *_ in log} - set(flagged):
        views = [VoteView(c, win_probability(ratings[lt], ratings[rt], ENV), owner[lt], owner[rt])
                 for p, lt, rt, c, _ in log if p == voter]
        if screen_voter(views, policy, _owner_rates(log, voter, owner)).flagged:
            flagged[voter] = len(log)


def run(seed: int, stuffer_share: float, detect: bool) -> dict[str, float]:
    rng = random.Random(seed)
    q = [rng.gauss(0, 1) for _ in range(N_PHOTOS)]
    owner = [f"owner{i // 4}" for i in range(N_PHOTOS)]
    stuffers = round(stuffer_share * N_VOTERS)
    kinds = {f"v{v}": _kind(v, stuffers) for v in range(N_VOTERS)}
    turns = [p for p in kinds for _ in range(VOTES_EACH)]
    random.Random(seed + 1000).shuffle(turns)
    weighting, policy = VoteWeighting(), ScreeningPolicy()
    ratings = [Rating(25.0, 25 / 3) for _ in range(N_PHOTOS)]
    log: list[Vote] = []
    cast: Counter[str] = Counter()
    flagged: dict[str, int] = {}

    def apply(vote: Vote) -> None:
        player, left, right, choice, history = vote
        weight = weighting.weight(anonymous=False, history=history, status="flagged" if player in flagged else None)
        ratings[left], ratings[right] = rate_weighted(ratings[left], ratings[right], choice, ENV, weight)

    for turn, player in enumerate(turns):
        anchor = rng.randrange(4) if kinds[player] == "stuffer" else rng.randrange(N_PHOTOS)
        near = [j for j in sorted(range(N_PHOTOS), key=lambda j: abs(ratings[j].mu - ratings[anchor].mu))
                if owner[j] != owner[anchor]][:8]
        opponent = rng.choice(near)
        anchor_left = rng.random() < 0.5
        p_anchor = 1 / (1 + math.exp(-SLOPE * (q[anchor] - q[opponent])))
        left, right = (anchor, opponent) if anchor_left else (opponent, anchor)
        vote = (player, left, right, _pick(kinds[player], p_anchor, anchor_left, rng), cast[player])
        cast[player] += 1
        log.append(vote)
        apply(vote)
        if detect and turn % SCREEN_EVERY == SCREEN_EVERY - 1:
            _screen(log, flagged, ratings, owner, policy)
    if detect:
        ratings = [Rating(25.0, 25 / 3) for _ in range(N_PHOTOS)]
        for vote in log:
            apply(vote)
    mu = np.array([r.mu for r in ratings])
    honest = [p for p, k in kinds.items() if k != "stuffer"]
    stuffed = [p for p, k in kinds.items() if k == "stuffer"]
    return {
        "rho": spearman(mu, np.array(q)),
        "owner0_mu": float(mu[:4].mean()),
        "owner0_sigma": float(np.mean([r.sigma for r in ratings[:4]])),
        "caught": sum(p in flagged for p in stuffed) / len(stuffed) if stuffed else float("nan"),
        "false_positive": sum(p in flagged for p in honest) / len(honest),
        "caught_at": statistics.mean(flagged[p] for p in stuffed if p in flagged) if any(
            p in flagged for p in stuffed) else float("nan"),
    }


def _fmt(values: list[float], digits: int = 2) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "—"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values) if len(values) > 1 else 0:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "ballot_stuffing.md"))
    args = parser.parse_args()
    started = time.time()
    clean = {s: run(s, 0.0, detect=False) for s in range(args.seeds)}
    rows = []
    for share in (0.0, 0.05, 0.10):
        for detect in (False, True):
            results = [clean[s] if share == 0.0 and not detect else run(s, share, detect) for s in range(args.seeds)]
            lift = [(r["owner0_mu"] - clean[s]["owner0_mu"]) / clean[s]["owner0_sigma"]
                    for s, r in enumerate(results)]
            rows.append(f"| {share:.0%} | {'on' if detect else 'off'} | {_fmt([r['rho'] for r in results], 3)} | "
                        f"{_fmt(lift)} | {_fmt([r['caught'] for r in results])} | "
                        f"{_fmt([r['caught_at'] / VOTES_EACH / N_VOTERS * 100 for r in results], 0)} | "
                        f"{sum(r['false_positive'] for r in results) / len(results):.2%} |")
    table = "\n".join([
        f"{N_PHOTOS} photos of {N_PHOTOS // 4} owners, {N_VOTERS} voters x {VOTES_EACH} votes, {args.seeds} seeds "
        "(mean ± sd over seeds).",
        "",
        "| stuffers | detector | Spearman(mu, q) | owner0 lift (sigma) | stuffers flagged | flagged at (% of run) "
        "| honest flagged |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
    ])
    Path(args.out).write_text(f"# Ballot stuffing (bench/ballot_stuffing.py)\n\n{table}\n\n"
                              f"Run time {time.time() - started:.0f} s.\n")
    print(table)


if __name__ == "__main__":
    main()
