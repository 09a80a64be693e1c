"""Votes logged by the earlier vote path, carried into the projector's batch records once.

Before the projector, each vote was applied in its own transaction and stamped on the vote document
(`applied_seq`, the celebrity flags, the discount parameters). A deployment upgraded from it has such
votes and no batch records; without this step the projector would apply them a second time. They
become batch records in their old order (consecutive votes with the same discount parameters share a
batch), with the ratings a replay gives, which are the ratings those votes left on the photos. Votes
logged but never applied (`applied_seq: None`) stay for the projector to apply as new ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import groupby
from typing import Any

from gaming.duels.records import initial_rating_fields
from gaming.ratings import RatingEnv
from storage.clock import utcnow
from storage.photos import PhotoRepository
from storage.rating_batches import RatingBatchRepository
from storage.votes import VoteRepository

Rate = Callable[[Mapping[str, Any], Mapping[str, Any], str, bool, bool, Mapping[str, Any] | None],
                tuple[dict[str, Any], dict[str, Any]]]


async def migrate_legacy_votes(votes: VoteRepository, batches: RatingBatchRepository, photos: PhotoRepository,
                               env: RatingEnv, rate: Rate, *, batch_size: int) -> int:
    """Write batch records for the applied legacy votes; how many votes were carried over."""
    legacy = await votes.legacy_applied()
    if not legacy:
        return 0
    # votes the old path logged but never applied are newer than this: the projector's sweep finds them
    never_applied = await votes.oldest_never_applied()
    horizon = never_applied["created_at"] if never_applied else max(v["created_at"] for v in legacy)
    ratings = {pid: initial_rating_fields(q, env) for pid, q in (await photos.priors()).items()}
    seq = 0
    for _, group in groupby(legacy, key=lambda v: repr(v.get("adjustment"))):
        chunk = list(group)
        for start in range(0, len(chunk), batch_size):
            part = chunk[start:start + batch_size]
            entries: list[dict[str, Any]] = []
            touched: set[Any] = set()
            for vote in part:
                left, right = ratings.get(vote["left"]), ratings.get(vote["right"])
                if vote["applied_seq"] < 0 or left is None or right is None:
                    entries.append({"vote": vote["_id"], "created_at": vote["created_at"], "gone": True})
                    continue
                flags = (bool(vote.get("left_celebrity")), bool(vote.get("right_celebrity")))
                ratings[vote["left"]], ratings[vote["right"]] = rate(left, right, vote["choice"], *flags,
                                                                     vote.get("adjustment"))
                touched |= {vote["left"], vote["right"]}
                entries.append({"vote": vote["_id"], "created_at": vote["created_at"], "left": vote["left"],
                                "right": vote["right"], "choice": vote["choice"], "left_celebrity": flags[0],
                                "right_celebrity": flags[1], "left_rating": ratings[vote["left"]],
                                "right_rating": ratings[vote["right"]]})
            seq += 1
            await batches.insert({
                "_id": seq, "written_at": utcnow(), "horizon": horizon,
                "max_created_at": max(v["created_at"] for v in part), "adjustment": part[0].get("adjustment"),
                "entries": entries, "ratings": [{"id": pid, "rating": ratings[pid]} for pid in touched],
                "migrated": True,
            })
    return len(legacy)
