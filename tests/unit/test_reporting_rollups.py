"""The roll-ups' pure parts: how a period maps to documents, the histograms' stated precision, and how
a contribution is added and taken back."""
import math
import statistics
from datetime import date, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from services.reporting import rollups
from services.reporting.reports import percentiles


def _days(ranges) -> set:
    """Every day a list of ranges covers (a month range stands for each of its days)."""
    covered = set()
    for level, low, high in ranges:
        if level == "d":
            day = date.fromisoformat(low)
            while day <= date.fromisoformat(high):
                covered.add(day)
                day += timedelta(days=1)
        else:
            month = date.fromisoformat(f"{low}-01")
            while month.isoformat()[:7] <= high:
                following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
                covered.update(month + timedelta(days=n) for n in range((following - month).days))
                month = following
    return covered


@given(first=st.dates(date(2025, 1, 1), date(2027, 12, 31)), length=st.integers(0, 800))
def test_a_period_is_its_whole_months_and_the_days_at_its_edges_and_nothing_else(first, length):
    last = first + timedelta(days=length)
    ranges = rollups.period_ranges(first, last)
    expected = {first + timedelta(days=n) for n in range(length + 1)}
    assert _days(ranges) == expected
    assert sum(1 for level, _, _ in ranges if level == "d") <= 2
    day_ranges = [(low, high) for level, low, high in ranges if level == "d"]
    assert sum((date.fromisoformat(h) - date.fromisoformat(lo)).days + 1 for lo, h in day_ranges) <= 61


def test_an_open_period_never_reads_the_records_without_a_moment_and_no_period_reads_them():
    assert rollups.period_ranges(None, None) == [("m", "", "~")]
    assert all(low > rollups.NO_TIME for _, low, _ in rollups.period_ranges(None, date(2026, 3, 15)))
    assert rollups.period_ranges(date(2026, 3, 1), None) == [("m", "2026-03", "~")]
    assert rollups.period_ranges(date(2026, 3, 5), None) == [("d", "2026-03-05", "2026-03-31"), ("m", "2026-04", "~")]


@given(seconds=st.floats(1e-3, 1e8))
def test_a_speed_bin_reads_back_within_one_percent(seconds):
    assert abs(rollups.speed_value(rollups.speed_bin(seconds)) - seconds) <= 0.01 * seconds


@given(values=st.lists(st.floats(0, 1e6), min_size=1, max_size=200))
def test_percentiles_from_the_histogram_are_within_one_percent(values):
    histogram = {}
    for value in values:
        histogram[rollups.speed_bin(value)] = histogram.get(rollups.speed_bin(value), 0) + 1
    binned, exact = percentiles(rollups.expand(histogram, rollups.speed_value)), percentiles(values)
    for got, wanted in zip(binned, exact, strict=True):
        assert math.isclose(got, wanted, rel_tol=0.01, abs_tol=1e-9)


def test_exact_bins_give_the_very_mean_and_median_of_day_durations():
    engaged = datetime(2026, 1, 1, 9, 30, 0, 123000, tzinfo=timezone.utc)
    closes = [engaged + timedelta(days=d, seconds=s, milliseconds=ms)
              for d, s, ms in ((3, 7, 1), (40, 0, 999), (9, 5, 0))]
    histogram = {}
    for closed in closes:
        histogram[rollups.exact_bin(closed, engaged)] = histogram.get(rollups.exact_bin(closed, engaged), 0) + 1
    days = [rollups.exact_days(v) for v in map(str, rollups.expand(histogram, int))]
    direct = [(closed - engaged).total_seconds() / 86400 for closed in closes]
    assert statistics.median(days) == statistics.median(direct)
    assert statistics.fmean(days) == statistics.fmean(direct)


def test_what_is_added_then_taken_back_leaves_nothing_behind():
    lead = {"captured_at": datetime(2026, 10, 31, 23, 0, tzinfo=timezone.utc), "rep_id": "bo.li", "team": "north",
            "source": "web", "assigned_at": datetime(2026, 11, 1, 0, 0, tzinfo=timezone.utc)}
    moved = {**lead, "team": "south"}
    rows = {}
    for slot, changes in rollups.contribution("L", lead).items():
        rows[slot] = rollups.added(rows.get(slot, {}), changes)
    for slot, changes in rollups.difference(rollups.contribution("L", moved), rollups.contribution("L", lead)).items():
        rows[slot] = rollups.added(rows.get(slot, {}), changes)
    team_slots = {slot for slot, row in rows.items() if row and "|team=" in slot}
    assert team_slots == {"L|team=south|d|2026-10-31", "L|team=south|m|2026-10"}
    for slot, changes in rollups.contribution("L", moved).items():
        rows[slot] = rollups.added(rows[slot], {path: -amount for path, amount in changes.items()})
    assert not any(rows.values())
    # A rep's id holds a dot: a field name cannot, so it is escaped and read back whole.
    assert rollups.value_of(rollups.field_name("bo.li")) == "bo.li"


def test_a_report_with_more_filters_reads_one_filters_documents_and_the_rows_matching_the_others():
    from services.common.auth import Principal, Role
    from services.reporting import reports
    from services.reporting.answers import NOTHING_MATCHES, FromRollups, plan
    # A manager's "webinar leads of my team": team documents, their source rows; the funnel (the whole's
    # metrics) from the finest rows, by source, medium and campaign.
    assert plan("L", {"team": "north", "source": "web"}, "", False) == (("team", "north"), "source",
                                                                       {"source": "web"}, ())
    assert plan("L", {"team": "north", "source": "web"}, "", True) == (("team", "north"), "campaign",
                                                                      {"source": "web"}, ())
    assert plan("L", {"owner_id": "bo", "source": "web", "team": "north"}, "", True) == (
        (rollups.OWNER_AND_TEAM, rollups.owner_and_team("bo", "north")), "campaign", {"source": "web"}, ())
    assert plan("L", {"source": "web", "team": "north", "campaign": "spring"}, "owner", False) is None
    # Source, medium and team, by source: team documents, rows of (source, medium, campaign) summed by source.
    assert plan("L", {"source": "web", "medium": "cpc", "team": "south"}, "source", False) == (
        ("team", "south"), "campaign", {"source": "web", "medium": "cpc"}, ("source",))
    assert plan("L", {"owner_id": "bo", "team": "north"}, "owner", False) == (
        (rollups.OWNER_AND_TEAM, rollups.owner_and_team("bo", "north")), "owner", {}, None)
    # Deals keep per grouping what win rates need, not loss reasons or stage times: those read the records.
    assert plan("C", {"product": "pro", "team": "north"}, "", False) == (("team", "north"), "product",
                                                                         {"product": "pro"}, ())
    assert plan("C", {"product": "pro", "team": "north"}, "", True) is None
    assert plan("C", {"product": "pro", "team": "north"}, "owner", False) is None
    assert plan("E", {"team": "north", "product": "pro"}, "", True) is None
    # A filter on what leads do not have (a product) matches no lead: no rows, not every lead's.
    assert plan("L", {"team": "north", "product": "pro"}, "", False) is NOTHING_MATCHES
    # Deals by account name are a family of their own, kept by day (each row holds every deal's cycle).
    assert plan("C", {"team": "north"}, "account", False) is None
    assert plan("K", {"team": "north"}, "account", False) == (("team", "north"), "account", {}, None)
    by_account = reports.checked_filter({"team": "north"}, Principal("a", Role.ADMIN, "hq"))
    assert FromRollups.covers(by_account, "account", "win_rate") and FromRollups.covers(by_account, "account",
                                                                                         "sales_cycle")
    # A filter on a field leads do not have (product) selects no lead: answered, with nothing.
    assert plan("L", {"product": "pro", "team": "north"}, "", True) is not None


def test_a_won_deal_is_listed_so_its_accounts_first_and_last_win_read_back_exactly():
    closed = datetime(2026, 11, 2, 9, 15, 30, 250000, tzinfo=timezone.utc)
    fact = {"opportunity_id": "opp.1", "closed_at": closed, "source": "trade%fair", "account_name": "Acme $ Co. Ltd."}
    name = rollups.won_entry(fact)
    assert "." not in name and "$" not in name  # one field name, not a path or an operator
    assert rollups.won_entry_values(name) == (closed, "opp.1", "trade%fair", "Acme $ Co. Ltd.")
    never = rollups.won_entry({**fact, "closed_at": None})
    assert rollups.won_entry_values(never)[0] is None
    # Names order as wins do: a win without a moment first (as the records path sorts it), then by moment.
    later = rollups.won_entry({**fact, "closed_at": closed + timedelta(microseconds=1), "opportunity_id": "a"})
    earlier = rollups.won_entry({**fact, "closed_at": datetime(1969, 7, 20, tzinfo=timezone.utc)})
    assert sorted([later, name, never, earlier]) == [never, earlier, name, later]
