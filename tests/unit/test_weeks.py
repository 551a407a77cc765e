from datetime import UTC, date, datetime, timedelta

import pytest

from core.errors import ParamError
from core.weeks import parse_week, shift_week, week_partition, week_start, weeks_between


def _iso(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def test_scheduled_monday_run_processes_the_previous_week():
    # the docstring's example: Monday 2026-11-30 06:00 UTC processes 23-29 November
    run = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    assert week_partition(run) == "2026-W48"
    assert week_start("2026-W48") == date(2026, 11, 23)


@pytest.mark.parametrize("offset", range(7))
def test_any_day_of_week_n_gives_n_minus_1(offset):
    day = date(2026, 3, 2) + timedelta(days=offset)  # Monday..Sunday of 2026-W10
    assert _iso(day) == "2026-W10"
    assert week_partition(day) == "2026-W09"
    assert week_partition(datetime.combine(day, datetime.max.time(), UTC)) == "2026-W09"


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2027, 1, 4), "2026-W53"),  # 2026 has 53 ISO weeks
        (date(2027, 1, 10), "2026-W53"),
        (date(2027, 1, 11), "2027-W01"),
        (date(2026, 1, 1), "2025-W52"),  # Thursday of 2026-W01
        (date(2026, 1, 5), "2026-W01"),
        (date(2021, 1, 4), "2020-W53"),
        (date(2024, 12, 30), "2024-W52"),  # Monday of 2025-W01
    ],
)
def test_year_boundaries(day, expected):
    assert week_partition(day) == expected
    assert week_partition(day) == _iso(day - timedelta(days=7))


def test_week_partition_matches_isocalendar_for_every_day_of_three_years():
    day = date(2025, 1, 1)
    while day < date(2028, 1, 1):
        assert week_partition(day) == _iso(day - timedelta(days=7))
        day += timedelta(days=1)


def test_2026_has_53_weeks_and_2027_has_52():
    assert date(2026, 12, 31).isocalendar()[1] == 53
    assert parse_week("2026-W53") == "2026-W53"
    assert date(2027, 12, 28).isocalendar()[1] == 52
    with pytest.raises(ParamError, match="does not exist"):
        parse_week("2027-W53")


@pytest.mark.parametrize("value", ["2026-W05", " 2026-W05 ", "2026-W01", "2026-W53"])
def test_parse_week_accepts(value):
    assert parse_week(value) == value.strip()


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "../../etc",
        "../../etc/passwd",
        "2026-W05/../../x",
        "2026W05",
        "2026-w05",
        "2026-W5",
        "2026-W005",
        "26-W05",
        "2026-05",
        "2026-W05-1",
        "2026-W05;rm -rf /",
        "2026-W05\nx",
        "W05",
    ],
)
def test_parse_week_rejects_malformed(value):
    with pytest.raises(ParamError, match="not an ISO week"):
        parse_week(value)


@pytest.mark.parametrize("value", ["2026-W54", "2027-W53", "2026-W00", "2026-W99", "0000-W01"])
def test_parse_week_rejects_weeks_that_do_not_exist(value):
    with pytest.raises(ParamError, match="does not exist"):
        parse_week(value)


@pytest.mark.parametrize("value", [None, 202605, b"2026-W05", ["2026-W05"]])
def test_parse_week_rejects_non_strings(value):
    with pytest.raises(ParamError):
        parse_week(value)


def test_week_start_is_a_monday():
    for week in ("2026-W01", "2026-W53", "2027-W01", "2020-W53"):
        monday = week_start(week)
        assert monday.isoweekday() == 1
        assert _iso(monday) == week
    assert week_start("2026-W01") == date(2025, 12, 29)


def test_shift_week_across_year_boundaries():
    assert shift_week("2026-W52", 1) == "2026-W53"
    assert shift_week("2026-W53", 1) == "2027-W01"
    assert shift_week("2027-W01", -1) == "2026-W53"
    assert shift_week("2027-W52", 1) == "2028-W01"
    assert shift_week("2027-W02", -3) == "2026-W52"
    assert shift_week("2026-W05", 0) == "2026-W05"
    assert shift_week("2026-W05", 52) == "2027-W04"  # 53 weeks in 2026: 52 later is W04
    assert shift_week(shift_week("2026-W10", -40), 40) == "2026-W10"
    with pytest.raises(ParamError):
        shift_week("2026-W54", 1)


def test_weeks_between_across_a_year_boundary():
    assert weeks_between("2026-W51", "2027-W02") == [
        "2026-W51",
        "2026-W52",
        "2026-W53",
        "2027-W01",
        "2027-W02",
    ]
    assert weeks_between("2027-W51", "2028-W01") == ["2027-W51", "2027-W52", "2028-W01"]
    assert weeks_between("2026-W05", "2026-W05") == ["2026-W05"]
    assert weeks_between("2026-W06", "2026-W05") == []
    assert len(weeks_between("2026-W01", "2026-W53")) == 53
    assert len(weeks_between("2027-W01", "2027-W52")) == 52
    with pytest.raises(ParamError):
        weeks_between("../x", "2026-W05")
