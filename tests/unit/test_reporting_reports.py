"""services.reporting.reports: filters checked by field and narrowed to what the caller may see, and
the report maths on opportunities worked out by hand."""
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from services.common.auth import Principal, Role
from services.common.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from services.reporting import reports
from services.reporting.reports import Fact

ADMIN = Principal("boss", Role.ADMIN, "hq")
MANAGER = Principal("manager.wang", Role.MANAGER, "team-a")
REP = Principal("rep.one", Role.REP, "team-a")


def day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def fact(opportunity_id, status, owner="rep.one", amount=None, engaged="2026-01-01", closed=None, **more):
    return Fact(opportunity_id=opportunity_id, status=status, owner_id=owner,
                amount=Decimal(amount) if amount is not None else None, currency="EUR" if amount else "",
                engaged_at=day(engaged) if engaged else None, closed_at=day(closed) if closed else None, **more)


def test_a_period_is_whole_utc_days_and_bad_dates_are_named():
    checked = reports.checked_filter({"period_start": "2026-01-01", "period_end": "2026-03-31"}, ADMIN)

    assert (checked.start, checked.end) == (day("2026-01-01"), day("2026-04-01"))
    assert (checked.start_day, checked.last_day) == ("2026-01-01", "2026-03-31")
    with pytest.raises(InvalidArgument) as bad:
        reports.checked_filter({"period_start": "2026-13-01", "period_end": "yesterday", "currency": "EURO"}, ADMIN)
    assert {v.field for v in bad.value.violations} == {"filter.period_start", "filter.period_end", "filter.currency"}
    with pytest.raises(InvalidArgument) as backwards:
        reports.checked_filter({"period_start": "2026-03-01", "period_end": "2026-02-01"}, ADMIN)
    assert [v.field for v in backwards.value.violations] == ["filter.period_end"]


def test_reps_see_their_own_numbers_and_managers_their_teams():
    assert dict(reports.checked_filter({}, REP).equal) == {"owner_id": "rep.one"}
    assert dict(reports.checked_filter({"team": "team-a"}, MANAGER).equal) == {"team": "team-a"}
    assert dict(reports.checked_filter({"owner_id": "rep.two"}, ADMIN).equal) == {"owner_id": "rep.two"}
    with pytest.raises(PermissionDenied):
        reports.checked_filter({"owner_id": "rep.two"}, REP)
    with pytest.raises(PermissionDenied):
        reports.checked_filter({"team": "team-b"}, MANAGER)


def test_win_rate_counts_closed_deals_and_adds_up_won_value_exactly():
    closed = [fact("a", "won", amount="100.10", manager_id="m1"), fact("b", "won", amount="0.20", manager_id="m1"),
              fact("c", "lost", manager_id="m1"), fact("d", "lost", owner="rep.two", manager_id="m2")]

    total, rows = reports.win_rates(closed, "owner")

    assert (total.closed, total.won, total.lost, total.win_rate, total.won_value) == (4, 2, 2, 0.5, Decimal("100.30"))
    assert [(r.key, r.closed, r.won, round(r.win_rate, 4)) for r in rows] == [("rep.one", 3, 2, 0.6667),
                                                                                ("rep.two", 1, 0, 0.0)]
    assert reports.win_rates([], "owner")[0].win_rate == 0.0
    assert reports.win_rates(closed, "")[1] == []


def test_sales_cycle_takes_engage_to_close_days_of_won_and_lost_apart():
    closed = [fact("a", "won", engaged="2026-01-01", closed="2026-01-11"),
              fact("b", "won", engaged="2026-01-01", closed="2026-01-31"),
              fact("c", "won", engaged="2026-01-01", closed="2026-03-02"),
              fact("d", "lost", engaged="2026-01-01", closed="2026-01-03"),
              fact("e", "won", engaged=None, closed="2026-01-03")]  # no engage date: not measurable

    total, _ = reports.sales_cycles(closed, "")

    assert (total.won, total.won_mean_days, total.won_median_days) == (3, pytest.approx(100 / 3), 30)
    assert (total.lost, total.lost_mean_days, total.lost_median_days) == (1, 2, 2)


def test_loss_reasons_are_counted_with_their_share():
    closed = [fact("a", "lost", lost_reason="price"), fact("b", "lost", lost_reason="price"),
              fact("c", "lost", lost_reason="timing"), fact("d", "won", amount="5")]

    rows, lost = reports.loss_reasons(closed)

    assert lost == 3 and rows == [("price", 2, pytest.approx(2 / 3)), ("timing", 1, pytest.approx(1 / 3))]


def test_account_value_counts_repeat_deals_after_the_first_win_and_keeps_how_it_was_won():
    won = [fact("b", "won", amount="300", closed="2026-05-01", account_id="acc-1", account_name="Acme",
                source="referral"),
           fact("a", "won", amount="1000", closed="2026-02-01", account_id="acc-1", account_name="Acme",
                source="trade_show"),
           fact("c", "won", amount="50", closed="2026-03-01", account_id="acc-2", account_name="Beta"),
           fact("d", "won", amount="70", closed="2026-03-01")]  # no account: not an account's value

    rows = reports.account_values(won)

    assert [(r.account_name, r.won_deals, r.won_value, r.repeat_deals, r.acquisition_source) for r in rows] == [
        ("Acme", 2, Decimal("1300"), 1, "trade_show"), ("Beta", 1, Decimal("50"), 0, "")]
    assert (rows[0].first_won_at, rows[0].last_won_at) == (day("2026-02-01"), day("2026-05-01"))


def test_forecast_weights_by_the_win_model_when_it_scored_the_lead_else_the_stage():
    open_deals = [fact("a", "open", amount="1000", probability=80, forecast_category="commit", lead_id="L1"),
                  fact("b", "open", amount="1000", probability=80, forecast_category="commit"),
                  fact("c", "open", amount="500", probability=10, forecast_category="pipeline")]
    won = [fact("d", "won", amount="200")]

    lines, from_model = reports.forecast(open_deals, won, {"L1": 0.35})

    assert from_model == 1
    assert [(line.category, line.opportunities, line.amount, line.weighted) for line in lines] == [
        ("closed", 1, Decimal("200"), Decimal("200.00")), ("commit", 2, Decimal("2000"), Decimal("1150.00")),
        ("best_case", 0, Decimal("0"), Decimal("0.00")), ("pipeline", 1, Decimal("500"), Decimal("50.00"))]


def test_amounts_in_several_currencies_are_never_added_up():
    mixed = [fact("a", "won", amount="10"), Fact("b", "won", amount=Decimal("10"), currency="USD")]

    with pytest.raises(FailedPrecondition, match="EUR, USD"):
        reports.ensure_one_currency(mixed, "")
    reports.ensure_one_currency(mixed, "EUR")  # the repository then reads one currency only
    reports.ensure_one_currency([fact("c", "lost")], "")  # an unknown amount has no currency


def test_money_text_has_no_exponent():
    assert [reports.text(Decimal(v)) for v in ("10005534", "1E+3", "52000.50", "0")] == \
        ["10005534", "1000", "52000.50", "0"]


def lead(lead_id, captured="2026-11-02T09:00:00", assigned=None, contacted=None, **more):
    def at(text):
        return day(text) if text else None
    return reports.LeadRow(lead_id=lead_id, captured_at=at(captured), assigned_at=at(assigned),
                           contacted_at=at(contacted), **more)


def test_speed_to_lead_measures_capture_to_assignment_and_to_first_contact():
    leads = [lead("a", assigned="2026-11-02T09:00:01", contacted="2026-11-02T09:10:00", rep_id="li.na"),
             lead("b", assigned="2026-11-02T09:00:03", contacted="2026-11-02T10:00:00", rep_id="li.na"),
             lead("c", assigned="2026-11-02T09:00:02", rep_id="wu.lei"),
             lead("d")]  # not assigned yet: counted, not measured

    total, rows = reports.speeds(leads, "owner")

    assert (total.leads, total.to_assignment[:2], total.to_contact[:2]) == (4, (3, 2.0), (2, 2100.0))
    assert total.to_contact[2] == pytest.approx(600 + 0.9 * 3000)  # p90 between the two contacts
    assert [(r.key, r.leads, r.to_assignment[0]) for r in rows] == [("li.na", 2, 2), ("", 1, 0), ("wu.lei", 1, 1)]
    with pytest.raises(InvalidArgument):
        reports.speeds(leads, "product")


def test_sla_compliance_counts_met_warned_breached_escalated_and_open():
    due = day("2026-11-02T11:00:00")
    leads = [lead("met", first_response_due_at=due, task_completed_at=day("2026-11-02T10:00:00")),
             lead("late", first_response_due_at=due, sla_warned_at=day("2026-11-02T10:30:00"),
                  sla_breached_at=due, task_completed_at=day("2026-11-02T12:00:00")),
             lead("moved", first_response_due_at=due, sla_breached_at=due, reassigned_at=day("2026-11-02T11:00:05")),
             lead("waiting", first_response_due_at=due),
             lead("no task")]

    total, _ = reports.sla_compliance(leads, "")

    assert (total.tasks, total.met, total.warned, total.breached, total.escalated, total.open) == (4, 1, 1, 2, 1, 1)
    assert (total.met_share, total.breached_share) == (0.25, 0.5)


def test_source_performance_joins_leads_to_their_deals_and_divides_the_campaign_cost():
    leads = [lead("a", source="google", campaign="spring", qualified_at=day("2026-11-02T10:00:00"),
                  converted_at=day("2026-11-03T10:00:00")),
             lead("b", source="google", campaign="autumn", qualified_at=day("2026-11-02T10:00:00"),
                  converted_at=day("2026-11-03T10:00:00")),
             lead("c", source="google", campaign="spring"),
             lead("d", source="referral")]
    facts = {"a": [fact("oa", "won", amount="900")], "b": [fact("ob", "lost")]}
    costs = {("google", "spring"): Decimal("300"), ("google", "autumn"): Decimal("150")}

    by_source = reports.source_performance(leads, facts, costs, by_campaign=False)
    by_campaign = reports.source_performance(leads, facts, costs, by_campaign=True)

    google = by_source[0]
    assert (google.source, google.leads, google.mqls, google.opportunities, google.won, google.closed) == \
        ("google", 3, 2, 2, 1, 2)
    assert (google.won_value, google.cost, google.cost_per_won) == (Decimal("900"), Decimal("450"), Decimal("450.00"))
    assert by_source[1].cost is None and by_source[1].cost_per_won is None
    spring = next(r for r in by_campaign if r.campaign == "spring")
    assert (spring.leads, spring.won, spring.cost_per_won) == (2, 1, Decimal("300.00"))
    autumn = next(r for r in by_campaign if r.campaign == "autumn")
    assert (autumn.won, autumn.cost_per_won) == (0, None)


def test_rep_performance_puts_each_reps_numbers_together():
    leads = [lead("a", assigned="2026-11-02T09:00:00", contacted="2026-11-02T09:30:00", rep_id="li.na", team="cn"),
             lead("b", assigned="2026-11-02T09:00:00", contacted="2026-11-02T10:30:00", rep_id="li.na", team="cn")]
    engaged = [fact("o1", "open", owner="li.na")]
    closed = [fact("o2", "won", owner="li.na", amount="500"), fact("o3", "lost", owner="li.na"),
              fact("o4", "won", owner="wu.lei", amount="900")]
    open_facts = [fact("o1", "open", owner="li.na", amount="2000", team="cn")]

    rows = reports.rep_performance(leads, {"li.na": 7, "zhao.yun": 1}, engaged, closed, open_facts)

    assert [(r.rep_id, r.leads, r.median_response_seconds, r.activities, r.opportunities, r.won, r.won_value,
             r.closed, r.open_pipeline) for r in rows] == [
        ("wu.lei", 0, 0.0, 0, 0, 1, Decimal("900"), 1, Decimal("0")),
        ("li.na", 2, 3600.0, 7, 1, 1, Decimal("500"), 2, Decimal("2000")),
        ("zhao.yun", 0, 0.0, 1, 0, 0, Decimal("0"), 0, Decimal("0"))]


def test_a_campaign_cost_is_checked_by_field():
    assert reports.checked_cost(" Google ", "spring", "300.50", "eur") == ("google", "spring", Decimal("300.50"),
                                                                           "EUR")
    with pytest.raises(InvalidArgument) as bad:
        reports.checked_cost("", "", "-1", "euro")
    assert {v.field for v in bad.value.violations} == {"source", "amount", "currency"}


def test_a_filter_on_a_field_the_records_lack_matches_nothing():
    checked = reports.checked_filter({"product": "GTX Pro", "campaign": "spring"}, ADMIN)

    # Opportunities carry their lead's attribution; leads know no product.
    assert checked.query(reports.FACT_FILTERS) == {"product": "GTX Pro", "campaign": "spring"}
    assert checked.query(reports.LEAD_FILTERS) == {"campaign": "spring", "_no_such_field": "GTX Pro"}


def test_time_in_each_stage_adds_up_every_visit():
    moves = (("", "qualification", day("2026-01-01")), ("qualification", "discovery", day("2026-01-03")),
             ("discovery", "qualification", day("2026-01-07")), ("qualification", "discovery", day("2026-01-08")),
             ("discovery", "closed_won", day("2026-01-18")))
    other = (("", "qualification", day("2026-02-01")), ("qualification", "closed_lost", day("2026-02-05")))

    rows = reports.stage_times([fact("a", "won", moves=moves[::-1]), fact("b", "lost", moves=other),
                                fact("c", "won")])  # imported: no moves

    assert rows == [("qualification", 2, pytest.approx(3.5), pytest.approx(3.5)),
                    ("discovery", 1, pytest.approx(14.0), pytest.approx(14.0))]


def test_the_funnel_follows_opportunities_through_their_pipeline_stages():
    def moved(*stages):
        return tuple((a, b, day(f"2026-01-{i + 1:02d}")) for i, (a, b) in enumerate(zip(("",) + stages, stages,
                                                                                       strict=False)))
    facts = [fact("a", "won", moves=moved("qualification", "discovery", "proposal", "closed_won"),
                  pipeline_id="new-business"),
             fact("b", "lost", moves=moved("qualification", "discovery", "qualification", "closed_lost"),
                  pipeline_id="new-business"),
             fact("c", "open", moves=moved("qualification"), pipeline_id="new-business"),
             fact("d", "open", moves=moved("health-check"), pipeline_id="renewal")]

    assert reports.stage_reach(facts) == [
        ("new-business", "qualification", 3, 1.0), ("new-business", "discovery", 2, pytest.approx(2 / 3)),
        ("new-business", "proposal", 1, 0.5), ("renewal", "health-check", 1, 1.0)]
