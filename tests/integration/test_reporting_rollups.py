"""Reports answered from the roll-ups equal the same reports computed from every record, on random
histories: duplicates, any arrival order, reassignments, reopened and re-valued deals, several
currencies, moments on both sides of a month's end, and roll-ups applied at random points in between
(so contributions are moved, not only added). Real store (the embedded SecantusDB), no service bus:
the events go through the same projection the event handlers call."""
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from nameko import config
from nameko.containers import ServiceContainer

from services.common.auth import Principal, Role
from services.common.events import iso, make_event
from services.reporting import answers, dependencies, reports
from services.reporting.dependencies import ReportingRepository, ReportingStore
from services.reporting.models import (ConfigChangeDocument, EventLogDocument, LeadProgressDocument,
                                       OpportunityFactDocument, RollupAppliedDocument, RollupDocument,
                                       RollupQueueDocument)
from services.reporting.reports import QuotaInput

ADMIN = Principal("admin.one", Role.ADMIN, "hq")
MONTH_END = datetime(2026, 10, 31, 20, 0, tzinfo=timezone.utc)  # histories straddle October's end
REPS = ("ann", "bo", "cy")
TEAMS = ("north", "south")


class ReportingStoreProbe:
    name = "reporting"  # the read models' database alias
    read_models = ReportingStore()


@pytest.fixture(scope="module")
def repository(infra):
    settings_ = {"AMQP_URI": infra.amqp_uri, "MONGODB_URI": infra.mongo_uri,
                 "MONGODB_DB_PREFIX": f"{infra.db_prefix}r{uuid.uuid4().hex[:6]}"}
    with config.patch(settings_):
        container = ServiceContainer(ReportingStoreProbe)
        container.start()
        [provider] = [d for d in container.dependencies if isinstance(d, ReportingStore)]
        yield ReportingRepository(provider)
        container.stop()


def record(repository, event: dict, service: str) -> None:
    """One event as the consumer hands it over: a batch of one."""
    repository.record([event], service)


def _clear() -> None:
    for document_cls in (LeadProgressDocument, OpportunityFactDocument, EventLogDocument, ConfigChangeDocument,
                         RollupDocument, RollupAppliedDocument, RollupQueueDocument):
        document_cls._get_collection().delete_many({})


@st.composite
def histories(draw):
    """Events of a few leads and their deals, as the services would emit them."""
    events = []
    for index in range(draw(st.integers(1, 6))):
        lead_id = f"lead-{index}"
        at = MONTH_END + timedelta(hours=draw(st.integers(-30, 30)), seconds=draw(st.integers(0, 3599)))

        def later(at=at):
            return at + timedelta(seconds=draw(st.integers(0, 4 * 86400)), milliseconds=draw(st.integers(0, 999)))
        source = draw(st.sampled_from(("web", "fair", "ads")))
        lead = {"lead_id": lead_id, "source": source, "medium": draw(st.sampled_from(("cpc", ""))),
                "campaign": draw(st.sampled_from(("spring", "fall", "")))}
        rep, team = draw(st.sampled_from(REPS)), draw(st.sampled_from(TEAMS))
        subject = {"lead_id": lead_id}
        steps = [("capture", make_event("lead_captured", subject, {"lead": lead}, occurred_at=at))]
        if draw(st.booleans()):
            steps.append(("scoring", make_event("lead_scored", subject, {
                "score": {"total": 60}, "win_probability": draw(st.sampled_from((None, 0.25, 0.6)))},
                occurred_at=later())))
        if draw(st.booleans()):
            steps.append(("scoring", make_event("lead_qualified", subject, {"lead": lead}, occurred_at=later())))
        if draw(st.booleans()):
            steps.append(("routing", make_event("lead_assigned", {**subject, "rep_id": rep},
                                                {"team": team, "assigned_at": iso(later()), "owner_version": 1})))
            if draw(st.booleans()):
                moved = {**subject, "rep_id": draw(st.sampled_from(REPS))}
                steps.append(("routing", make_event("lead_reassigned", moved, {
                    "team": draw(st.sampled_from(TEAMS)), "reassigned_at": iso(later()), "owner_version": 2})))
        if draw(st.booleans()):
            task = {**subject, "task_id": f"task-{index}", "rep_id": rep}
            steps.append(("routing", make_event("task_created", task, {"due_at": iso(later())})))
            for event_type, field in (("sla_warning", "warned_at"), ("sla_breached", "breached_at"),
                                      ("task_completed", "completed_at")):
                if draw(st.booleans()):
                    steps.append(("routing", make_event(event_type, task, {field: iso(later())})))
        if draw(st.booleans()):
            steps.append(("opportunity", make_event("lead_contacted", {**subject, "rep_id": rep},
                                                    {"contacted_at": iso(later())})))
        if draw(st.booleans()):
            steps.append(("opportunity", make_event("activity_logged", {**subject, "activity_id": f"act-{index}"},
                                                    {"activity_type": "call", "logged_by": rep}, occurred_at=later())))
        for deal in range(draw(st.integers(0, 2))):
            opportunity = {**subject, "opportunity_id": f"opp-{index}-{deal}"}
            engaged = later()
            snapshot = {"owner_id": rep, "team": team, "manager_id": f"mgr-{team}", "office": "east",
                        "account_id": f"acc-{index % 2}", "account_name": f"Account {index % 2}",
                        "product": draw(st.sampled_from(("basic", "pro"))), "pipeline_id": "new",
                        "currency": draw(st.sampled_from(("USD", "USD", "EUR", ""))),
                        "amount": draw(st.sampled_from(("1000", "250.50", "", "99.99"))),
                        "probability": draw(st.sampled_from((10, 40))), "engaged_at": iso(engaged),
                        "close_date": draw(st.sampled_from(("2026-10-31", "2026-11-02", ""))),
                        "forecast_category": draw(st.sampled_from(("commit", "best_case", "pipeline", "odd")))}
            steps.append(("opportunity", make_event("lead_converted", opportunity, {
                **snapshot, "status": "open", "stage_id": "qualify", "version": 1, "converted_at": iso(engaged)},
                occurred_at=engaged)))
            if draw(st.booleans()):
                steps.append(("opportunity", make_event("opportunity_stage_changed", opportunity, {
                    **snapshot, "status": "open", "stage_id": "propose", "from_stage": "qualify",
                    "to_stage": "propose", "changed_at": iso(later()), "version": 2})))
            outcome = draw(st.sampled_from(("open", "won", "lost")))
            if outcome != "open":
                closed = later()
                steps.append(("opportunity", make_event(f"opportunity_{outcome}", opportunity, {
                    **snapshot, "status": outcome, "stage_id": f"closed_{outcome}", "from_stage": "propose",
                    "to_stage": f"closed_{outcome}", "changed_at": iso(closed), "closed_at": iso(closed),
                    "lost_reason": "price" if outcome == "lost" else "", "version": 3})))
                if draw(st.booleans()):  # reopened, with a new owner and amount
                    steps.append(("opportunity", make_event("opportunity_updated", opportunity, {
                        **snapshot, "owner_id": draw(st.sampled_from(REPS)), "amount": "5000", "status": "open",
                        "stage_id": "propose", "version": 4})))
        events += steps
    order = draw(st.permutations(range(len(events))))
    repeats = draw(st.lists(st.integers(0, len(events) - 1), max_size=4))
    applies = draw(st.lists(st.integers(0, len(events)), max_size=3))
    return [events[i] for i in order] + [events[i] for i in repeats], set(applies)


FILTERS = [{}, {"team": "north"}, {"owner_id": "bo"}, {"source": "web"}, {"campaign": "spring"},
           {"product": "pro"}, {"medium": "cpc"}, {"currency": "USD"}, {"currency": "EUR", "team": "south"},
           {"period_start": "2026-10-30", "period_end": "2026-10-31"},
           {"period_start": "2026-10-31", "period_end": "2026-11-03", "source": "fair"},
           {"period_start": "2026-10-01", "period_end": "2026-11-30"}, {"period_start": "2026-11-01"},
           {"period_end": "2026-11-01", "currency": "USD"}, {"owner_id": "bo", "team": "north"},
           {"owner_id": "ann", "team": "south", "period_start": "2026-10-31", "currency": "USD"},
           {"owner_id": "bo", "source": "web"},
           # more filters than the documents are kept for: one filter's documents, the others' rows
           {"team": "north", "source": "web"}, {"source": "fair", "medium": "cpc", "team": "south"},
           {"owner_id": "cy", "team": "north", "campaign": "spring"}, {"product": "pro", "team": "north"},
           {"period_start": "2026-10-31", "team": "south", "source": "ads", "currency": "USD"}]
# No shrinking: each example runs against the store, and the differences it lists say enough. The
# examples are the same on every run (derandomize), so a run on a slow machine can only be slower,
# never different; each costs 1-2 s (22 filters, every report both ways), 20 of them ~50 s here.
@pytest.mark.timeout(300)
@settings(max_examples=20, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(history=histories())
def test_every_report_from_the_rollups_equals_the_report_from_the_records(repository, history):
    events, apply_at = history
    _clear()
    for position, (service, event) in enumerate(events):
        if position in apply_at:
            repository.rollups.catch_up(60)
        record(repository, event, service)
    repository.rollups.catch_up(60)
    assert RollupQueueDocument.objects.count() == 0

    from_records, from_rollups = answers.FromRecords(repository), answers.FromRollups(repository)
    found = []
    for values in FILTERS:
        report_filter = reports.checked_filter(values, ADMIN)
        compared, differences = answers.verify(repository, report_filter)
        assert compared >= 5, values  # the lead reports, ungrouped at least, come from the roll-ups under any filter
        found += [f"{report} {values}{detail}" for report, detail in differences]
        if not answers.FromRollups.covers(report_filter, "", "attainment"):
            continue
        quota = QuotaInput("bo", "", "2026-10-01", "2026-11-30", reports.Decimal("1000"), "USD")
        found += answers.differences(f"attainment {values}", from_records.attainment(report_filter, quota),
                                     from_rollups.attainment(report_filter, quota))
    assert not found, "\n".join(found[:20])


def test_a_record_that_changes_moves_its_whole_contribution(repository):
    """A lead reassigned from one team to another after its roll-up was applied counts in the new
    team only; a deal reopened after it was won leaves the won figures."""
    _clear()
    at = MONTH_END - timedelta(days=3)
    lead = {"lead_id": "moving"}
    record(repository, make_event("lead_captured", lead, {"lead": {"lead_id": "moving", "source": "web"}},
                                 occurred_at=at), "capture")
    record(repository, make_event("lead_assigned", {**lead, "rep_id": "ann"}, {
        "team": "north", "assigned_at": iso(at), "owner_version": 1}), "routing")
    deal = {**lead, "opportunity_id": "moving-deal"}
    snapshot = {"owner_id": "ann", "team": "north", "currency": "USD", "amount": "700", "pipeline_id": "new",
                "engaged_at": iso(at)}
    record(repository, make_event("opportunity_won", deal, {**snapshot, "status": "won", "stage_id": "closed_won",
                                                           "closed_at": iso(at), "version": 3}), "opportunity")
    repository.rollups.catch_up(60)
    rolled = answers.FromRollups(repository)
    north = reports.checked_filter({"team": "north"}, ADMIN)
    assert rolled.speed(north, "")[0].leads == 1
    assert rolled.win_rate(north, "")[0].won_value == reports.Decimal("700")

    record(repository, make_event("lead_reassigned", {**lead, "rep_id": "bo"}, {
        "team": "south", "reassigned_at": iso(at + timedelta(hours=1)), "owner_version": 2}), "routing")
    record(repository, make_event("opportunity_updated", deal, {**snapshot, "status": "open", "stage_id": "propose",
                                                               "version": 4}), "opportunity")
    repository.rollups.catch_up(60)
    south = reports.checked_filter({"team": "south"}, ADMIN)
    assert (rolled.speed(north, "")[0].leads, rolled.speed(south, "")[0].leads) == (0, 1)
    total, _ = rolled.win_rate(north, "")
    assert (total.won, total.won_value) == (0, reports.Decimal(0))
    assert [line.opportunities for line in rolled.forecast(north)[0] if line.category == "pipeline"] == [1]


def _records() -> dict:
    """Every projected record, as comparable values (moves as a set: arrival order aside)."""
    found = {}
    for document_cls in (LeadProgressDocument, OpportunityFactDocument):
        for raw in document_cls._get_collection().find():
            raw["moves"] = sorted((m["from"], m["to"], m["at"]) for m in raw.get("moves") or ())
            found[(document_cls.__name__, raw.pop("_id"))] = raw
    return found


@pytest.mark.timeout(300)
@settings(max_examples=15, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(history=histories())
def test_a_rebuild_reaches_the_state_the_live_projection_left(repository, history):
    """The rebuild folds each lead's events in memory and writes them in bulk; the live projection
    writes event by event. Fed the same log (in the order the events happened, as the fold reads
    it, with redeliveries), both leave the same records, and the roll-ups rebuilt from them agree
    with every report."""
    events, _ = history
    _clear()
    for service, event in sorted(events, key=lambda pair: (pair[1]["occurred_at"], pair[1]["event_id"])):
        record(repository, event, service)
    live = _records()

    repository.start_rebuild("admin.one")
    job = repository.claim_rebuild()
    batch = dependencies.REBUILD_BATCH
    dependencies.REBUILD_BATCH = 7  # several batches: leads cut whole, a lead longer than a batch alone
    try:
        while repository.replay_batch(job):
            pass
    finally:
        dependencies.REBUILD_BATCH = batch
    repository.rollups.catch_up(60)
    assert _records() == live
    for values in FILTERS:
        _, differences = answers.verify(repository, reports.checked_filter(values, ADMIN))
        assert not differences, differences[:5]


def test_the_rollups_alone_are_rebuilt_from_the_records(repository):
    """What an operator runs when VerifyReports found a difference: the roll-ups are cleared and every
    record applied again; reports read the records until the last one is, and no replay starts."""
    _clear()
    at = MONTH_END - timedelta(days=1)
    for index in range(3):
        lead = {"lead_id": f"again-{index}"}
        record(repository, make_event("lead_captured", lead, {"lead": {**lead, "source": "web"}}, occurred_at=at),
                          "capture")
        record(repository, make_event("opportunity_won", {**lead, "opportunity_id": f"again-deal-{index}"}, {
            "owner_id": "ann", "team": "north", "currency": "USD", "amount": "100", "status": "won",
            "stage_id": "closed_won", "closed_at": iso(at), "engaged_at": iso(at), "version": 3}), "opportunity")
    repository.rollups.catch_up(60)
    RollupDocument._get_collection().delete_many({})  # roll-ups lost or wrong

    job = repository.rebuild_rollups("admin.one")
    assert (job.status, job.total) == ("done", 6)  # three leads, three deals
    assert not repository.rollups.ready()
    assert repository.claim_rebuild() is None
    repository.rollups.catch_up(60)
    assert repository.rollups.ready()
    total, _ = answers.FromRollups(repository).win_rate(reports.checked_filter({}, ADMIN), "")
    assert (total.won, total.won_value) == (3, reports.Decimal("300"))
    assert answers.verify(repository, reports.checked_filter({}, ADMIN))[1] == []
