"""services.routing.calendar: response deadlines in business time, by hand — weekends, holidays,
time zones and a daylight-saving change inside a working day."""
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from services.common.errors import InvalidArgument
from services.routing.calendar import (WorkingCalendar, add_business_time, is_working_time,
                                       validate_calendar)

UTC = timezone.utc
SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
HOURS = timedelta(hours=1)
SHANGHAI_OFFICE = validate_calendar("Asia/Shanghai", {d: "09:00-18:00" for d in ("mon", "tue", "wed", "thu", "fri")},
                                    ["2026-10-01", "2026-10-02"])


def local(zone, *args) -> datetime:
    return datetime(*args, tzinfo=zone)


@pytest.mark.parametrize("start, hours, due", [
    (local(SHANGHAI, 2026, 11, 25, 10, 0), 2, local(SHANGHAI, 2026, 11, 25, 12, 0)),   # inside the day
    (local(SHANGHAI, 2026, 11, 25, 7, 30), 2, local(SHANGHAI, 2026, 11, 25, 11, 0)),   # before opening
    (local(SHANGHAI, 2026, 11, 27, 17, 0), 2, local(SHANGHAI, 2026, 11, 30, 10, 0)),   # Friday -> Monday
    (local(SHANGHAI, 2026, 11, 28, 15, 0), 2, local(SHANGHAI, 2026, 11, 30, 11, 0)),   # a Saturday lead
    (local(SHANGHAI, 2026, 11, 25, 18, 0), 9, local(SHANGHAI, 2026, 11, 26, 18, 0)),   # exactly one day
    (local(SHANGHAI, 2026, 9, 30, 17, 0), 2, local(SHANGHAI, 2026, 10, 5, 10, 0)),     # National Day holidays
    (local(SHANGHAI, 2026, 11, 25, 12, 0), 0, local(SHANGHAI, 2026, 11, 25, 12, 0)),
])
def test_deadlines_count_only_working_time(start, hours, due):
    assert add_business_time(start, hours * HOURS, SHANGHAI_OFFICE) == due.astimezone(UTC)


def test_the_reps_time_zone_decides_not_the_servers():
    # 02:00 UTC is 10:00 in Shanghai: two hours later it is noon there.
    assert add_business_time(datetime(2026, 11, 25, 2, 0, tzinfo=UTC), 2 * HOURS, SHANGHAI_OFFICE) == \
        datetime(2026, 11, 25, 4, 0, tzinfo=UTC)


def test_a_daylight_saving_change_is_real_time_not_wall_clock():
    # Berlin works Sundays 00:00-06:00 in this calendar; on 2026-03-29 02:00 becomes 03:00,
    # so that day has five working hours, not six.
    night_shift = WorkingCalendar("Europe/Berlin", {6: (time(0), time(6))})
    start = local(BERLIN, 2026, 3, 29, 0, 0)
    assert add_business_time(start, 5 * HOURS, night_shift) == local(BERLIN, 2026, 3, 29, 6, 0).astimezone(UTC)
    assert add_business_time(start, 6 * HOURS, night_shift) == local(BERLIN, 2026, 4, 5, 1, 0).astimezone(UTC)


def test_is_working_time():
    assert is_working_time(local(SHANGHAI, 2026, 11, 25, 9, 0), SHANGHAI_OFFICE)
    assert not is_working_time(local(SHANGHAI, 2026, 11, 25, 18, 0), SHANGHAI_OFFICE)
    assert not is_working_time(local(SHANGHAI, 2026, 10, 1, 11, 0), SHANGHAI_OFFICE)  # holiday
    assert not is_working_time(local(SHANGHAI, 2026, 11, 29, 11, 0), SHANGHAI_OFFICE)  # Sunday


def test_a_calendar_without_working_time_is_refused_or_reported():
    with pytest.raises(ValueError, match="too little working time"):
        add_business_time(datetime(2026, 1, 1, tzinfo=UTC), HOURS, WorkingCalendar("UTC", {}))


def test_bad_calendars_name_each_field():
    with pytest.raises(InvalidArgument) as raised:
        validate_calendar("Mars/Olympus", {"mon": "18:00-09:00", "funday": "09:00-17:00", "tue": "9 to 5"},
                          ["2026-13-01"])
    assert {v.field for v in raised.value.violations} == {
        "calendar.time_zone", "calendar.hours[mon]", "calendar.hours[funday]", "calendar.hours[tue]",
        "calendar.holidays[0]"}
    assert validate_calendar("UTC", {}, []).hours == WorkingCalendar().hours  # the default: Mon-Fri 9-17
