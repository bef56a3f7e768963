"""Business-time arithmetic for response deadlines: "first response within 2 business hours" on a
rep's working calendar, in the rep's time zone, skipping days off and holidays.

Pure: no storage or transport. Deadlines are computed in UTC; wall-clock opening hours are turned into
instants per day, so a daylight-saving change inside a working day shortens or lengthens it as it
really does.
"""
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.common.errors import Validator

MAX_DAYS_AHEAD = 400  # a deadline further away than this means the calendar has (almost) no working time
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class WorkingCalendar:
    time_zone: str = "UTC"
    # weekday (0 = Monday) -> (opening, closing) local time; a weekday not listed is a day off
    hours: dict = field(default_factory=lambda: {day: (time(9), time(17)) for day in range(5)})
    holidays: frozenset = frozenset()  # local dates with no working time


def validate_calendar(time_zone: str, hours: dict, holidays, prefix: str = "calendar") -> WorkingCalendar:
    """``hours`` maps "mon".."sun" to "HH:MM-HH:MM"; ``holidays`` are ISO dates."""
    check = Validator()
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        check.check(False, f"{prefix}.time_zone", f"unknown time zone {time_zone!r} (use an IANA name such as "
                                                  "Asia/Shanghai)")
    parsed = {}
    for day, span in hours.items():
        where = f"{prefix}.hours[{day}]"
        if not check.check(day in WEEKDAYS, where, f"must be one of {', '.join(WEEKDAYS)}"):
            continue
        try:
            opening, closing = (time.fromisoformat(part.strip()) for part in span.split("-"))
        except ValueError:
            check.check(False, where, "must be HH:MM-HH:MM, e.g. 09:00-18:00")
            continue
        if check.check(opening < closing, where, "must open before it closes"):
            parsed[WEEKDAYS.index(day)] = (opening, closing)
    if not check.violations:  # each bad day is named already; this is for a calendar of only days off
        check.check(bool(parsed) or not hours, f"{prefix}.hours", "needs at least one working day")
    days = set()
    for index, text in enumerate(holidays):
        try:
            days.add(date.fromisoformat(text))
        except ValueError:
            check.check(False, f"{prefix}.holidays[{index}]", "must be a date, YYYY-MM-DD")
    check.raise_if_invalid()
    return WorkingCalendar(time_zone, parsed if hours else WorkingCalendar().hours, frozenset(days))


def _working_window(day: date, calendar: WorkingCalendar, zone: ZoneInfo):
    """The working interval of one local day as UTC instants, or None on a day off."""
    if day in calendar.holidays or day.weekday() not in calendar.hours:
        return None
    opening, closing = calendar.hours[day.weekday()]
    return (datetime.combine(day, opening, zone).astimezone(timezone.utc),
            datetime.combine(day, closing, zone).astimezone(timezone.utc))


def add_business_time(start: datetime, duration: timedelta, calendar: WorkingCalendar) -> datetime:
    """The instant ``duration`` of working time after ``start`` (UTC). Time before opening, after
    closing, on days off and on holidays does not count."""
    zone = ZoneInfo(calendar.time_zone)
    cursor, remaining = start.astimezone(timezone.utc), duration
    day = cursor.astimezone(zone).date()
    for _ in range(MAX_DAYS_AHEAD):
        window = _working_window(day, calendar, zone)
        if window is not None:
            opening, closing = window
            cursor = max(cursor, opening)
            if cursor < closing:
                if remaining <= closing - cursor:
                    return cursor + remaining
                remaining -= closing - cursor
        day += timedelta(days=1)
    raise ValueError(f"no deadline within {MAX_DAYS_AHEAD} days: the calendar has too little working time")


def is_working_time(moment: datetime, calendar: WorkingCalendar) -> bool:
    zone = ZoneInfo(calendar.time_zone)
    window = _working_window(moment.astimezone(zone).date(), calendar, zone)
    return window is not None and window[0] <= moment.astimezone(timezone.utc) < window[1]
