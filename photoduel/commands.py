"""Maintenance commands, on the same wiring as the service: import, reindex, ratings rebuild."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import structlog

from photoduel.ingest_wait import wait_for_ingest
from photoduel.progress_bars import Progress
from photoduel.settings import Settings
from storage.mongo import long_work

log = structlog.get_logger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif"}


def _image_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


async def import_directory(settings: Settings, directory: Path, owner: str, *, process: bool) -> dict[str, int]:
    """Upload every image under `directory` for `owner`. Resumable: a file already imported (same
    bytes, same owner) is skipped, so an interrupted import is simply run again."""
    from ml.images import ImageRejected
    from photoduel.services import open_services
    from photos.upload_rules import UploadArgumentError

    counts = {"imported": 0, "skipped": 0, "rejected": 0}
    files = _image_files(directory)
    uploaded: list[Any] = []
    async with open_services(settings, run_worker=process, load_model=process, live_events=False) as services:
        with Progress("importing", total=len(files), unit="file") as bar:
            for path in files:
                try:
                    title = services.uploads.rules.title(path.stem)
                    result = await services.uploads.upload(owner, path.read_bytes(), declared_type=None,
                                                           filename=path.name, title=title)
                except (ImageRejected, UploadArgumentError) as exc:
                    counts["rejected"] += 1
                    log.warning("import.rejected", file=str(path), reason=getattr(exc, "reason", None),
                                error=str(exc))
                    continue
                finally:
                    bar.update()
                counts["imported" if result.created else "skipped"] += 1
                uploaded.append(result.photo["_id"])
        if process:
            await wait_for_ingest(services.photos, uploaded)
    return counts


async def reindex(settings: Settings, *, batch_size: int) -> int:
    """Re-embed every READY photo with the configured model into that model's own collection, and
    recompute the neighbour lists from it. The old collection stays until dropped by hand."""
    from ml.pipelines.reindex import reindex_all
    from photoduel.services import open_services

    async with open_services(settings, run_worker=False, load_model=True, live_events=False) as services:
        await services.models.wait_ready()
        return await reindex_all(services.photos, services.blobs, services.vectors, services.analyzer,
                                 neighbours_k=settings.neighbours_k, batch_size=batch_size,
                                 progress=lambda step, total: Progress(step, total=total, unit="photo"))


async def rebuild_ratings(settings: Settings, *, check: bool) -> tuple[int, int]:
    """Replay the vote log; returns (photos whose stored rating differs, photos rewritten).

    `--check` only reads. A rebuild writes, so it takes the rating projector's lease first: it refuses
    while a running service holds it (stop the service, or wait for its lease to lapse)."""
    from photoduel.services import open_services

    async with open_services(settings, run_worker=False, load_model=False, open_vectors=False,
                             chores=not check, live_events=False) as services:
        replayed = await services.projector.replay()
        with long_work():
            stored = await services.photos.stored_ratings()
        differing = sum(1 for photo_id, fields in replayed.items() if stored.get(photo_id, fields) != fields)
        written = 0 if check else await services.projector.rebuild()
        return differing, written


async def import_celebrities(settings: Settings, directory: Path) -> dict[str, int]:
    """One folder per person (the folder name is the name), each with photos of exactly that person.
    A person whose photos are rejected is reported and skipped; the others are enrolled."""
    from ml.pipelines.celebrity_enrolment import EnrolmentRejected, enrol_celebrity
    from photoduel.services import open_services

    counts = {"enrolled": 0, "rejected": 0}
    people = sorted(p for p in directory.iterdir() if p.is_dir())
    async with open_services(settings, run_worker=False, load_model=False, live_events=False) as services:
        with Progress("enrolling", total=len(people), unit="person") as bar:
            for folder in people:
                files = [(p.read_bytes(), None) for p in _image_files(folder)]
                try:
                    await enrol_celebrity(services.gallery, services.faces, services.photos, services.jobs,
                                          name=folder.name, files=files, decode=services.uploads.rules.decode,
                                          by="cli")
                    counts["enrolled"] += 1
                except (EnrolmentRejected, ValueError) as exc:
                    counts["rejected"] += 1
                    log.warning("celebrities.rejected", person=folder.name, error=str(exc))
                bar.update()
    return counts


def cmd_celebrities_import(settings: Settings, args: argparse.Namespace) -> int:
    counts = asyncio.run(import_celebrities(settings, Path(args.directory)))
    print(f"enrolled {counts['enrolled']} people, rejected {counts['rejected']}")
    return 0 if counts["rejected"] == 0 else 1


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    counts = asyncio.run(import_directory(settings, Path(args.directory), args.owner, process=args.process))
    print(f"imported {counts['imported']}, skipped {counts['skipped']} already there, rejected {counts['rejected']}")
    return 0 if counts["rejected"] == 0 else 1


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from photoduel.demo import DemoRefused, seed_demo

    try:
        summary = asyncio.run(seed_demo(settings, photos=args.photos, votes=args.votes, seed=args.seed))
    except DemoRefused as exc:
        print(f"photoduel demo: {exc}", file=sys.stderr)
        return 1
    print(f"demo: {summary.players} players, {summary.photos} photos ({summary.ready} ready), "
          f"{summary.tags} tags accepted, {summary.votes} votes")
    print(f"now run `photoduel serve` and open http://{settings.host}:{settings.port}/app")
    return 0


def cmd_reindex(settings: Settings, args: argparse.Namespace) -> int:
    count = asyncio.run(reindex(settings, batch_size=args.batch_size))
    print(f"reindexed {count} photos into the collection of {settings.clip_model}")
    return 0


def cmd_ratings_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    differing, written = asyncio.run(rebuild_ratings(settings, check=args.check))
    if args.check:
        print(f"{differing} photos differ from a replay of the vote log")
        return 0 if differing == 0 else 1
    print(f"replayed the vote log: {differing} photos differed, {written} rewritten")
    return 0


async def voter_flags(settings: Settings, action: str, *, player: str = "", status: str | None = None,
                      note: str | None = None) -> list[dict[str, Any]]:
    """List the screening decisions, screen the recent voters now, or record an admin's decision."""
    from photoduel.services import open_services
    from storage.voter_flags import VoterFlagRepository

    async with open_services(settings, run_worker=False, load_model=False, open_vectors=False,
                             chores=False) as services:
        flags = VoterFlagRepository(services.db)
        if action == "list":
            return await flags.listing(status)
        if action == "screen":
            return [{"_id": p, "status": "flagged"} for p in await services.voter_screening.screen_recent(force=True)]
        decided = await flags.decide(player, "confirmed" if action == "confirm" else "cleared", by="cli", note=note)
        return [decided] if decided else []


def cmd_voters(settings: Settings, args: argparse.Namespace) -> int:
    rows = asyncio.run(voter_flags(settings, args.voters_command, player=getattr(args, "player", ""),
                                   status=getattr(args, "status", None), note=getattr(args, "note", None)))
    for row in rows:
        tests = ", ".join(f"{f['test']}{'=' + str(f['detail']) if f.get('detail') else ''}"
                          for f in row.get("findings", []))
        print(f"{row['_id']}\t{row['status']}\t{tests}")
    if args.voters_command in ("clear", "confirm"):
        if not rows:
            print(f"no flag for {args.player}")
            return 1
        print("run `photoduel ratings rebuild` (service stopped) to weigh this voter's earlier votes again")
    return 0


def operation_texts(files: list[Path]) -> list[str]:
    """What a client may send for each file: its text as is, and as printed by graphql-core (the same as
    graphql-js's `print`, which Apollo clients send). Raises ValueError for a file that does not parse."""
    from graphql import GraphQLSyntaxError, parse, print_ast

    texts: list[str] = []
    for path in files:
        text = path.read_text()
        try:
            texts += [text, print_ast(parse(text))]
        except GraphQLSyntaxError as exc:
            raise ValueError(f"{path}: {exc.message}") from None
    return list(dict.fromkeys(texts))


async def register_operations(settings: Settings, files: list[Path]) -> list[str]:
    """Puts the operations of `files` on the allow-list (PHOTODUEL_PERSISTED_QUERIES_ONLY); their hashes."""
    from photoduel.services import open_services

    texts = operation_texts(files)
    async with open_services(settings, run_worker=False, load_model=False, open_vectors=False,
                             chores=False, live_events=False) as services:
        return [(await services.persisted_queries.register(t, source="cli", allow=True)).sha256 for t in texts]


def cmd_register_operations(settings: Settings, args: argparse.Namespace) -> int:
    try:
        hashes = asyncio.run(register_operations(settings, [Path(f) for f in args.files]))
    except (OSError, ValueError) as exc:
        print(f"photoduel: {exc}", file=sys.stderr)
        return 1
    print(f"registered {len(hashes)} operation texts from {len(args.files)} files:")
    for sha in hashes:
        print(sha)
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def register_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    imp = sub.add_parser("import", help="bulk import a folder of photos for one owner (resumable)")
    imp.add_argument("directory")
    imp.add_argument("--owner", required=True, help="the owner's user id (Firebase uid)")
    imp.add_argument("--process", action="store_true", help="also run the ingest here until the queue is empty")
    imp.set_defaults(func=cmd_import)

    demo = sub.add_parser("demo", help="seed an empty install with demo players, photos, tags and votes")
    demo.add_argument("--photos", type=_positive, default=60, help="photos to upload (default 60)")
    demo.add_argument("--votes", type=_positive, default=600, help="simulated votes (default 600)")
    demo.add_argument("--seed", type=int, default=7, help="the same seed makes the same demo")
    demo.set_defaults(func=cmd_demo)

    ops = sub.add_parser("register-operations",
                         help="put the operations in .graphql files on the allow-list (persisted queries)")
    ops.add_argument("files", nargs="+", metavar="FILE")
    ops.set_defaults(func=cmd_register_operations)

    rei = sub.add_parser("reindex", help="re-embed every photo with PHOTODUEL_CLIP_MODEL into a new collection")
    rei.add_argument("--batch-size", type=int, default=32)
    rei.set_defaults(func=cmd_reindex)

    celebrities = sub.add_parser("celebrities", help="the celebrity gallery")
    celebrities_sub = celebrities.add_subparsers(dest="celebrities_command", required=True)
    cimp = celebrities_sub.add_parser("import", help="enrol people from DIR/<name>/*.jpg (one folder per person)")
    cimp.add_argument("directory")
    cimp.set_defaults(func=cmd_celebrities_import)

    ratings = sub.add_parser("ratings", help="rating maintenance")
    ratings_sub = ratings.add_subparsers(dest="ratings_command", required=True)
    rebuild = ratings_sub.add_parser("rebuild", help="replay the vote log and rewrite every rating")
    rebuild.add_argument("--check", action="store_true", help="only report photos that differ; exit 1 if any")
    rebuild.set_defaults(func=cmd_ratings_rebuild)

    voters = sub.add_parser("voters", help="ballot-stuffer screening: flags, and an admin's decisions on them")
    voters_sub = voters.add_subparsers(dest="voters_command", required=True)
    vlist = voters_sub.add_parser("list", help="flagged, confirmed and cleared voters, newest flag first")
    vlist.add_argument("--status", choices=["flagged", "confirmed", "cleared"])
    voters_sub.add_parser("screen", help="screen everyone who voted since the last run, now")
    for name, text in (("clear", "a flag was wrong: count the voter's votes again"),
                       ("confirm", "a flag was right: keep the voter's votes out")):
        decide = voters_sub.add_parser(name, help=text)
        decide.add_argument("player", help="the voter's user id (Firebase uid)")
        decide.add_argument("--note", help="why, for the record")
    voters.set_defaults(func=cmd_voters)
