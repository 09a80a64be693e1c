"""Player progress rules (gaming/progress.py), pure: local days across midnight and DST, streaks, the
daily goal, badges, and what the player is shown on a given day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gaming.duels.progress_projector import CountedVote, progress_fields, progress_from_doc, votes_by_player
from gaming.progress import (
    FIRST_VOTE,
    VOTES_100,
    WEEK_STREAK,
    Achievement,
    InvalidTimeZone,
    Progress,
    after_vote,
    after_votes,
    as_of,
    local_day,
    time_zone,
    worth_announcing,
    zone_or_default,
)

UTC_ZONE = ZoneInfo("UTC")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def run(times: list[datetime], zone: ZoneInfo = UTC_ZONE, goal: int = 3,
        start: Progress | None = None) -> tuple[Progress, list[Achievement]]:
    return after_votes(start or Progress(), "p", times, zone, goal)


@pytest.mark.parametrize(("moment", "zone", "day"), [
    # Paris in summer is UTC+2: its midnight is 22:00 UTC
    ("2024-06-01T21:59:59", "Europe/Paris", date(2024, 6, 1)),
    ("2024-06-01T22:00:00", "Europe/Paris", date(2024, 6, 2)),
    # New York's spring-forward day has 23 hours: 05:00 UTC (00:00 EST) to 03:59 UTC next day (23:59 EDT)
    ("2024-03-10T05:00:00", "America/New_York", date(2024, 3, 10)),
    ("2024-03-11T03:59:00", "America/New_York", date(2024, 3, 10)),
    ("2024-03-11T04:00:00", "America/New_York", date(2024, 3, 11)),
    # its fall-back day has 25: 04:00 UTC (00:00 EDT) to 04:59 UTC next day (23:59 EST)
    ("2024-11-03T04:00:00", "America/New_York", date(2024, 11, 3)),
    ("2024-11-04T04:59:00", "America/New_York", date(2024, 11, 3)),
    ("2024-11-04T05:00:00", "America/New_York", date(2024, 11, 4)),
    # Santiago changes at midnight: 23:00-24:00 on 6 April 2024 happened twice, 00:00 on 8 Sept never
    ("2024-04-07T02:30:00", "America/Santiago", date(2024, 4, 6)),
    ("2024-04-07T03:30:00", "America/Santiago", date(2024, 4, 6)),
    ("2024-04-07T04:00:00", "America/Santiago", date(2024, 4, 7)),
    ("2024-09-08T03:59:00", "America/Santiago", date(2024, 9, 7)),
    ("2024-09-08T04:00:00", "America/Santiago", date(2024, 9, 8)),  # 01:00 local, the day's first minute
    # Kiribati is UTC+14: its day starts on the previous UTC day
    ("2024-01-01T10:00:00", "Pacific/Kiritimati", date(2024, 1, 2)),
])
def test_a_vote_belongs_to_the_day_of_the_players_zone(moment: str, zone: str, day: date) -> None:
    assert local_day(utc(moment), ZoneInfo(zone)) == day


def test_a_naive_moment_is_utc_as_stored() -> None:
    assert local_day(datetime(2024, 6, 1, 22, 30), ZoneInfo("Europe/Paris")) == date(2024, 6, 2)


def test_the_streak_survives_midnight_in_the_players_zone_not_in_utc() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")  # UTC+9: 23:59 and 00:01 local are the same UTC day
    progress, _ = run([utc("2024-06-01T14:59:00"), utc("2024-06-01T15:01:00")], tokyo)
    assert (progress.streak, progress.last_day, progress.day_votes) == (2, date(2024, 6, 2), 1)
    la = ZoneInfo("America/Los_Angeles")  # UTC-7: 16:30 and 17:30 local straddle UTC midnight, one local day
    progress, _ = run([utc("2024-06-01T23:30:00"), utc("2024-06-02T00:30:00")], la)
    assert (progress.streak, progress.last_day, progress.day_votes) == (1, date(2024, 6, 1), 2)


def test_the_streak_counts_consecutive_days_across_a_dst_change_and_breaks_on_a_missed_day() -> None:
    ny = ZoneInfo("America/New_York")
    # 00:30 local on 9, 10 (23-hour day), 11 March, then 23:30 local on the 12th
    times = [utc("2024-03-09T05:30:00"), utc("2024-03-10T05:30:00"), utc("2024-03-11T04:30:00"),
             utc("2024-03-13T03:30:00")]
    progress, _ = run(times, ny)
    assert (progress.streak, progress.longest_streak, progress.last_day) == (4, 4, date(2024, 3, 12))
    progress, _ = run([utc("2024-03-15T12:00:00")], ny, start=progress)  # the 13th and 14th missed
    assert (progress.streak, progress.longest_streak, progress.votes) == (1, 4, 5)


def test_a_vote_on_an_earlier_day_counts_but_leaves_the_days_alone() -> None:
    progress, _ = run([utc("2024-06-02T10:00:00"), utc("2024-06-01T23:00:00")])
    assert (progress.votes, progress.streak, progress.last_day, progress.day_votes) == (2, 1, date(2024, 6, 2), 1)


def test_badges_are_earned_once_at_the_vote_that_met_their_rule() -> None:
    start = utc("2024-06-01T08:00:00")
    first, achieved = run([start])
    assert achieved == [Achievement("p", start, badge=FIRST_VOTE)]
    assert dict(first.badges) == {FIRST_VOTE: start}
    times = [start + timedelta(minutes=n) for n in range(1, 100)]
    hundred, achieved = run(times, goal=1000, start=first)
    assert [a.badge for a in achieved] == [VOTES_100]
    assert achieved[0].at == times[-1] and hundred.votes == 100
    again, achieved = run([start + timedelta(hours=5)], goal=1000, start=hundred)
    assert achieved == [] and again.badges == hundred.badges


def test_a_weeks_streak_earns_its_badge_on_the_seventh_day_and_only_once() -> None:
    days = [utc("2024-06-01T12:00:00") + timedelta(days=n) for n in range(7)]
    progress, achieved = run(days[:6], goal=1000)
    assert WEEK_STREAK not in progress.badges
    progress, achieved = run(days[6:], goal=1000, start=progress)
    assert achieved == [Achievement("p", days[6], badge=WEEK_STREAK)]
    later = [days[6] + timedelta(days=9 + n) for n in range(8)]  # broken, then seven days again
    progress, achieved = run(later, goal=1000, start=progress)
    assert achieved == [] and progress.streak == 8 and progress.longest_streak == 8


def test_the_daily_goal_is_reached_once_a_day_by_the_vote_that_meets_it() -> None:
    paris = ZoneInfo("Europe/Paris")
    day1 = [utc("2024-06-01T20:00:00") + timedelta(minutes=n) for n in range(5)]  # 22:00-22:04 local
    progress, achieved = run(day1, paris, goal=3)
    goals = [a for a in achieved if a.goal is not None]
    assert goals == [Achievement("p", day1[2], day=date(2024, 6, 1), goal=3)]
    day2 = [utc("2024-06-01T22:00:00") + timedelta(minutes=n) for n in range(3)]  # 00:00 local on the 2nd
    progress, achieved = run(day2, paris, goal=3, start=progress)
    assert [(a.day, a.at) for a in achieved if a.goal] == [(date(2024, 6, 2), day2[2])]
    assert progress.day_votes == 3 and progress.streak == 2


def test_what_the_player_sees_today() -> None:
    progress, _ = run([utc("2024-06-01T10:00:00"), utc("2024-06-02T10:00:00"), utc("2024-06-02T11:00:00")])
    today = as_of(progress, date(2024, 6, 2), goal=3)
    assert (today.votes, today.streak_days, today.today_votes, today.goal) == (3, 2, 2, 3)
    tomorrow = as_of(progress, date(2024, 6, 3), goal=3)  # not voted yet today: the streak can still go on
    assert (tomorrow.streak_days, tomorrow.today_votes) == (2, 0)
    later = as_of(progress, date(2024, 6, 4), goal=3)  # a day missed: broken
    assert (later.streak_days, later.longest_streak_days, later.votes) == (0, 2, 3)
    assert as_of(Progress(), date(2024, 6, 4), goal=3).streak_days == 0


@pytest.mark.parametrize("name", ["UTC", "Europe/Paris", "America/Argentina/Buenos_Aires", "Etc/GMT-14"])
def test_iana_zones_are_accepted(name: str) -> None:
    assert time_zone(name).key == name


@pytest.mark.parametrize("name", ["", "Mars/Olympus_Mons", "europe/paris", "../../etc/passwd", "/etc/localtime",
                                  "localtime", "posixrules", "Europe/Paris ", "UTC\x00", "x" * 300])
def test_other_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidTimeZone):
        time_zone(name)


def test_no_zone_or_a_zone_gone_from_the_database_is_utc() -> None:
    assert zone_or_default(None).key == "UTC"
    assert zone_or_default("Atlantis/Capital").key == "UTC"
    assert zone_or_default("Asia/Tokyo").key == "Asia/Tokyo"


def test_only_recent_achievements_are_announced() -> None:
    now = utc("2024-06-10T12:00:00")
    assert worth_announcing(Achievement("p", now - timedelta(hours=23), badge=FIRST_VOTE), now)
    assert not worth_announcing(Achievement("p", now - timedelta(days=2), badge=FIRST_VOTE), now)


def test_the_stored_form_round_trips() -> None:
    progress, _ = run([utc("2024-06-01T10:00:00"), utc("2024-06-02T10:00:00")])
    doc = {**progress_fields(progress), "badges": dict(progress.badges), "seq": 4, "zone": None}
    assert progress_from_doc(doc) == progress
    assert progress_from_doc(None) == Progress()


def test_votes_are_taken_from_batches_by_player_in_log_order() -> None:
    at = utc("2024-06-01T10:00:00")
    batches = [
        {"_id": 3, "entries": [{"player": "a", "created_at": at}, {"player": "b", "created_at": at},
                               {"created_at": at, "gone": True}]},
        {"_id": 4, "entries": []},  # a rebase record
        {"_id": 6, "entries": [{"player": "a", "created_at": at + timedelta(seconds=1)},
                               {"created_at": at}]},  # a vote logged before votes named their player
    ]
    assert votes_by_player(batches) == {
        "a": [CountedVote(3, at), CountedVote(6, at + timedelta(seconds=1))], "b": [CountedVote(3, at)]}


def test_each_vote_is_one_step() -> None:
    one, _ = after_vote(Progress(), "p", utc("2024-06-01T10:00:00"), UTC_ZONE, 3)
    assert (one.votes, one.streak, one.day_votes) == (1, 1, 1)
