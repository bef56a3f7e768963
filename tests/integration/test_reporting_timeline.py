"""Reporting through real events: the lead 360 timeline across services and the account, the
forecast weighted by the win model, numbers narrowed to who is asking, empty answers for filters
that match nothing, and projections rebuilt from the event log to the same state."""
import time
import uuid

from grpc import StatusCode
from leadflow.reporting.v1 import reporting_pb2, reporting_pb2_grpc

from services.reporting.models import EventLogDocument, LeadProgressDocument, OpportunityFactDocument
from services.reporting.service import ReportingService
from tests.integration.conftest import start_isolated
from tests.support import new_event, violations_of, wait_until


def opportunity_event(event_type, opportunity_id, lead_id, account_id, **snapshot):
    subjects = {"opportunity_id": opportunity_id, **({"lead_id": lead_id} if lead_id else {})}
    return new_event(event_type, subjects, **{
        "owner_id": "rep.one", "team": "team-a", "account_id": account_id, "account_name": "Acme GmbH",
        "pipeline_id": "new-business", "currency": "EUR", "engaged_at": "2026-11-02T09:00:00.000000Z", **snapshot})


def story(lead_id: str, account_id: str, earlier_deal: str) -> list:
    """One lead's path, each event at its own moment (as the services would have stamped them)."""
    def at(minute: int) -> str:
        return f"2026-11-29T10:{minute:02d}:00.000000Z"
    return [
        ("opportunity", opportunity_event("opportunity_won", earlier_deal, "", account_id, stage_id="closed_won",
                                          status="won", amount="5000", closed_at="2026-06-01T00:00:00.000000Z",
                                          probability=100, forecast_category="closed", version=3,
                                          occurred_at="2026-06-01T09:00:00.000000Z")),
        ("capture", new_event("lead_captured", {"lead_id": lead_id}, lead={"lead_id": lead_id, "source": "google"},
                              occurred_at=at(0))),
        ("scoring", new_event("lead_scored", {"lead_id": lead_id}, score={"total": 72, "grade": "A"},
                              win_probability=0.4, win_model_version="win-model@1", occurred_at=at(1))),
        ("routing", new_event("lead_assigned", {"lead_id": lead_id, "rep_id": "rep.one"}, team="team-a",
                              assigned_at=at(1), rule_id="enterprise", owner_version=1, occurred_at=at(1))),
        ("opportunity", new_event("activity_logged", {"lead_id": lead_id, "activity_id": str(uuid.uuid4())},
                                  activity_type="call", logged_by="rep.one", subject="intro call", mentions=[],
                                  occurred_at=at(5))),
        ("opportunity", opportunity_event("lead_converted", f"opp-{lead_id}", lead_id, account_id,
                                          stage_id="qualification", status="open", amount="1000",
                                          close_date="2026-12-20", probability=10, forecast_category="pipeline",
                                          rep_id="rep.one", handed_off=False, version=1, converted_at=at(30),
                                          occurred_at=at(30))),
    ]


def test_a_leads_timeline_spans_services_and_its_account(run_service, infra, tokens, publish):
    service = start_isolated(run_service, infra, ReportingService)
    lead_id, account_id, earlier = str(uuid.uuid4()), f"acc-{uuid.uuid4().hex[:8]}", f"opp-{uuid.uuid4().hex[:8]}"
    events = story(lead_id, account_id, earlier)
    for source_service, event in events:
        publish(source_service, event)
    publish(*events[3])  # a redelivery is one entry
    assert wait_until(lambda: EventLogDocument.objects(lead_id=lead_id).count() == 5 and
                      OpportunityFactDocument.objects(id=f"opp-{lead_id}").count() == 1)

    def timeline(who):
        return service.grpc(reporting_pb2_grpc.ReportingServiceStub, tokens[who]).GetLeadTimeline(
            reporting_pb2.GetLeadTimelineRequest(lead_id=lead_id)).entries

    entries = timeline("rep")
    # The account's earlier win comes first; the lead's own scoring and assignment, stamped in the
    # same millisecond, keep the order in which one causes the other.
    assert [(e.event_type, e.service) for e in entries] == [
        ("opportunity_won", "opportunity"), ("lead_captured", "capture"), ("lead_scored", "scoring"),
        ("lead_assigned", "routing"), ("activity_logged", "opportunity"), ("lead_converted", "opportunity")]
    assert [e.summary for e in entries] == [
        "opportunity won (5000 EUR)", "captured from google", "scored 72 (grade A)",
        "assigned to rep.one by rule enterprise", "call logged by rep.one: intro call",
        "converted into an opportunity owned by rep.one"]
    assert entries[0].details["opportunity_id"] == earlier
    assert [e.event_type for e in timeline("manager")] == [e.event_type for e in entries]
    outsider = service.grpc(reporting_pb2_grpc.ReportingServiceStub, tokens["outsider_rep"])
    assert outsider.error("GetLeadTimeline", reporting_pb2.GetLeadTimelineRequest(
        lead_id=lead_id)).code == StatusCode.PERMISSION_DENIED
    assert outsider.error("GetLeadTimeline", reporting_pb2.GetLeadTimelineRequest(
        lead_id="no-such-lead")).code == StatusCode.NOT_FOUND

    # The open deal is weighted by the win model's 40 %, not its stage's 10 %.
    admin = service.grpc(reporting_pb2_grpc.ReportingServiceStub, tokens["admin"])
    forecast = admin.GetForecast(reporting_pb2.GetForecastRequest(filter=reporting_pb2.ReportFilter(
        period_start="2026-12-01", period_end="2026-12-31")))
    assert {c.category: (c.opportunities, c.amount, c.weighted_amount) for c in forecast.categories} == {
        "closed": (0, "0", "0"), "commit": (0, "0", "0"), "best_case": (0, "0", "0"), "pipeline": (1, "1000", "400")}
    assert (forecast.weighted_total, forecast.from_win_model) == ("400", 1)


def test_numbers_follow_who_is_asking_and_empty_filters_are_empty(run_service, infra, tokens, publish):
    service = start_isolated(run_service, infra, ReportingService)
    account_id = f"acc-{uuid.uuid4().hex[:8]}"
    for n, (owner, team, status) in enumerate((("rep.one", "team-a", "won"), ("rep.two", "team-a", "lost"),
                                               ("rep.far", "team-b", "won"))):
        publish("opportunity", opportunity_event(
            f"opportunity_{status}", f"opp-{n}-{account_id}", "", account_id, owner_id=owner, team=team,
            status=status, stage_id=f"closed_{status}", amount="100" if status == "won" else "",
            lost_reason="price" if status == "lost" else "", closed_at="2026-11-20T00:00:00.000000Z", version=2))
    assert wait_until(lambda: OpportunityFactDocument.objects(account_id=account_id).count() == 3)

    def win_rate(who, **filters):
        return service.grpc(reporting_pb2_grpc.ReportingServiceStub, tokens[who]).GetWinRate(
            reporting_pb2.GetWinRateRequest(filter=reporting_pb2.ReportFilter(**filters))).total

    assert (win_rate("admin").closed, win_rate("admin").won) == (3, 2)
    assert (win_rate("manager").closed, win_rate("manager").won) == (2, 1)
    assert (win_rate("rep").closed, win_rate("rep").won, win_rate("rep").won_value) == (1, 1, "100")
    rep = service.grpc(reporting_pb2_grpc.ReportingServiceStub, tokens["rep"])
    denied = rep.error("GetWinRate", reporting_pb2.GetWinRateRequest(filter=reporting_pb2.ReportFilter(
        owner_id="rep.two")))
    assert denied.code == StatusCode.PERMISSION_DENIED

    nothing = win_rate("admin", owner_id="nobody")
    assert (nothing.closed, nothing.won, nothing.win_rate, nothing.won_value) == (0, 0, 0.0, "0")
    admin = service.grpc(reporting_pb2_grpc.ReportingServiceStub, tokens["admin"])
    assert list(admin.GetLossReasons(reporting_pb2.GetLossReasonsRequest(
        filter=reporting_pb2.ReportFilter(period_start="2030-01-01"))).reasons) == []
    bad = admin.error("GetSalesCycle", reporting_pb2.GetSalesCycleRequest(
        filter=reporting_pb2.ReportFilter(period_start="2026-11-31")))
    assert bad.code == StatusCode.INVALID_ARGUMENT and list(violations_of(bad.status)) == ["filter.period_start"]


def test_projections_are_rebuilt_from_the_event_log_to_the_same_state(run_service, infra, tokens, publish):
    service = start_isolated(run_service, infra, ReportingService, REPORTING_TIMER_SECONDS=0.2)
    for _ in range(3):
        lead_id = str(uuid.uuid4())
        for source_service, event in story(lead_id, f"acc-{lead_id[:8]}", f"opp-{uuid.uuid4().hex[:8]}"):
            publish(source_service, event)
    assert wait_until(lambda: EventLogDocument.objects.count() == 18 and OpportunityFactDocument.objects.count() == 6)

    def state():
        return (sorted(repr(sorted(d.to_mongo().to_dict().items())) for d in LeadProgressDocument.objects),
                sorted(repr(sorted(d.to_mongo().to_dict().items())) for d in OpportunityFactDocument.objects))
    # An event is logged before it is projected: wait until the projections stop changing.
    settled = []

    def unchanged_for_a_moment():
        first = state()
        time.sleep(0.3)
        settled[:] = [first]
        return first == state()
    assert wait_until(unchanged_for_a_moment, timeout=15)
    before = settled[0]

    admin = service.grpc(reporting_pb2_grpc.ReportingServiceStub, tokens["admin"])
    job = admin.RebuildProjections(reporting_pb2.RebuildProjectionsRequest()).job
    assert (job.status, job.total) == ("running", 18)

    def finished():
        return admin.GetRebuildJob(reporting_pb2.GetRebuildJobRequest(job_id=job.job_id)).job
    assert wait_until(lambda: finished().status == "done", timeout=30)
    assert finished().processed == 18
    assert state() == before
    rep = service.grpc(reporting_pb2_grpc.ReportingServiceStub, tokens["rep"])
    assert rep.error("RebuildProjections", reporting_pb2.RebuildProjectionsRequest()).code == \
        StatusCode.PERMISSION_DENIED


def test_lead_reports_from_real_events(run_service, infra, tokens, publish):
    service = start_isolated(run_service, infra, ReportingService)
    admin = service.grpc(reporting_pb2_grpc.ReportingServiceStub, tokens["admin"])
    campaign = f"spring-{uuid.uuid4().hex[:6]}"

    def at(minute: int) -> str:
        return f"2026-11-29T10:{minute:02d}:00.000000Z"

    for n, (rep, assigned_after, contact_after, done) in enumerate((("rep.one", 1, 10, 20), ("rep.one", 2, 40, 59),
                                                                    ("rep.two", 3, None, None))):
        lead_id = str(uuid.uuid4())
        lead = {"lead_id": lead_id, "source": "google", "medium": "cpc", "campaign": campaign}
        events = [
            ("capture", new_event("lead_captured", {"lead_id": lead_id}, lead=lead, occurred_at=at(0))),
            ("scoring", new_event("lead_qualified", {"lead_id": lead_id}, lead=lead, occurred_at=at(0))),
            ("routing", new_event("lead_assigned", {"lead_id": lead_id, "rep_id": rep}, team="team-a",
                                  assigned_at=at(assigned_after), owner_version=1)),
            ("routing", new_event("task_created", {"task_id": f"t-{lead_id}", "lead_id": lead_id, "rep_id": rep},
                                  kind="first_response", due_at=at(30))),
        ]
        if contact_after is not None:
            events.append(("opportunity", new_event("lead_contacted", {"lead_id": lead_id, "rep_id": rep},
                                                    contacted_at=at(contact_after))))
            events.append(("routing", new_event("task_completed", {"task_id": f"t-{lead_id}", "lead_id": lead_id,
                                                                   "rep_id": rep}, completed_at=at(done))))
        if n == 1:
            events.append(("routing", new_event("sla_breached", {"task_id": f"t-{lead_id}", "lead_id": lead_id,
                                                                 "rep_id": rep}, breached_at=at(30))))
        if n == 0:
            events.append(("opportunity", opportunity_event(
                "opportunity_won", f"opp-{lead_id}", lead_id, "acc-x", status="won", stage_id="closed_won",
                amount="900", closed_at="2026-11-29T12:00:00.000000Z", version=3)))
            events.append(("opportunity", opportunity_event(
                "lead_converted", f"opp-{lead_id}", lead_id, "acc-x", status="open", stage_id="qualification",
                amount="900", version=1, converted_at=at(50))))
        for source_service, event in events:
            publish(source_service, event)
    admin.PutCampaignCost(reporting_pb2.PutCampaignCostRequest(source="google", campaign=campaign, amount="450",
                                                               currency="EUR"))
    only = reporting_pb2.ReportFilter(campaign=campaign)
    assert wait_until(lambda: admin.GetSlaCompliance(reporting_pb2.GetSlaComplianceRequest(
        filter=only)).total.breached == 1 and admin.GetSourcePerformance(reporting_pb2.GetSourcePerformanceRequest(
            filter=only)).rows[0].won == 1)

    speed = admin.GetSpeedToLead(reporting_pb2.GetSpeedToLeadRequest(filter=only,
                                                                      group_by=reporting_pb2.GROUP_BY_OWNER))
    assert (speed.total.leads, speed.total.to_assignment.leads, speed.total.to_assignment.p50_seconds) == (3, 3, 120)
    assert (speed.total.to_contact.leads, speed.total.to_contact.p50_seconds) == (2, 1500)
    assert [(r.key, r.leads) for r in speed.rows] == [("rep.one", 2), ("rep.two", 1)]
    sla = admin.GetSlaCompliance(reporting_pb2.GetSlaComplianceRequest(filter=only)).total
    assert (sla.tasks, sla.met, sla.breached, sla.open) == (3, 1, 1, 1)
    [google] = admin.GetSourcePerformance(reporting_pb2.GetSourcePerformanceRequest(filter=only,
                                                                                    by_campaign=True)).rows
    assert (google.source, google.medium, google.campaign, google.leads, google.mqls, google.opportunities) == \
        ("google", "cpc", campaign, 3, 3, 1)
    assert (google.won, google.won_value, google.win_rate, google.cost, google.cost_per_won) == \
        (1, "900", 1.0, "450", "450")
    reps = {r.rep_id: r for r in admin.GetRepPerformance(reporting_pb2.GetRepPerformanceRequest(
        filter=reporting_pb2.ReportFilter(team="team-a", period_start="2026-11-29", period_end="2026-11-29"))).reps}
    assert (reps["rep.one"].leads, reps["rep.one"].median_response_seconds) == (2, (540 + 2280) / 2)
    # Opportunity reports follow the lead's attribution too.
    by_campaign = admin.GetWinRate(reporting_pb2.GetWinRateRequest(filter=only)).total
    assert (by_campaign.closed, by_campaign.won, by_campaign.won_value) == (1, 1, "900")
    bad = admin.error("PutCampaignCost", reporting_pb2.PutCampaignCostRequest(source="google", amount="lots"))
    assert set(violations_of(bad.status)) == {"amount", "currency"}


def test_quotas_are_attained_by_what_was_won_and_any_report_exports_as_csv(run_service, infra, tokens, publish):
    import csv
    import io
    import urllib.request
    service = start_isolated(run_service, infra, ReportingService, REPORTING_TIMER_SECONDS=0.2,
                             REPORTING_GAUGE_SECONDS=0.2)
    admin = service.grpc(reporting_pb2_grpc.ReportingServiceStub, tokens["admin"])
    manager = service.grpc(reporting_pb2_grpc.ReportingServiceStub, tokens["manager"])
    account_id = f"acc-{uuid.uuid4().hex[:8]}"
    for n, (owner, status, amount, closed, close_date) in enumerate((
            ("rep.one", "won", "30000", "2026-10-05T00:00:00.000000Z", ""),
            ("rep.two", "won", "20000", "2026-11-20T00:00:00.000000Z", ""),
            ("rep.one", "open", "50000", "", "2026-12-15"))):
        publish("opportunity", opportunity_event(
            f"opportunity_{'won' if status == 'won' else 'updated'}", f"q-{n}-{account_id}", "", account_id,
            owner_id=owner, status=status, stage_id="closed_won" if status == "won" else "negotiation",
            amount=amount, closed_at=closed, close_date=close_date, probability=80, forecast_category="commit",
            version=2))
    assert wait_until(lambda: OpportunityFactDocument.objects(account_id=account_id).count() == 3)

    def quota(caller, **fields):
        return caller.PutQuota(reporting_pb2.PutQuotaRequest(quota=reporting_pb2.Quota(**{
            "period_start": "2026-10-01", "period_end": "2026-12-31", "currency": "EUR", **fields}))).quota
    quota(admin, owner_id="rep.one", team="team-a", amount="100000")
    stored = quota(manager, amount="150000")  # the manager's own team
    assert (stored.team, stored.owner_id, stored.amount) == ("team-a", "", "150000")
    assert manager.error("PutQuota", reporting_pb2.PutQuotaRequest(quota=reporting_pb2.Quota(
        team="team-b", period_start="2026-10-01", period_end="2026-12-31", amount="1", currency="EUR"))).code == \
        StatusCode.PERMISSION_DENIED
    bad = admin.error("PutQuota", reporting_pb2.PutQuotaRequest(quota=reporting_pb2.Quota(
        period_start="2026-12-31", period_end="2026-10-01", amount="0", currency="EUR")))
    assert set(violations_of(bad.status)) == {"quota.owner_id", "quota.period_end", "quota.amount"}

    rows = {(q.quota.owner_id, q.quota.team): q for q in manager.GetQuotaAttainment(
        reporting_pb2.GetQuotaAttainmentRequest(filter=reporting_pb2.ReportFilter(
            period_start="2026-10-01", period_end="2026-12-31"))).quotas}
    rep_one, team = rows[("rep.one", "team-a")], rows[("", "team-a")]
    assert (rep_one.won_value, rep_one.attainment, rep_one.weighted_pipeline) == ("30000", 0.3, "40000")
    assert rep_one.projected_attainment == 0.7
    assert (team.won_value, team.weighted_pipeline) == ("50000", "40000")

    exported = admin.ExportReport(reporting_pb2.ExportReportRequest(
        report=reporting_pb2.REPORT_KIND_WIN_RATE, group_by=reporting_pb2.GROUP_BY_OWNER,
        filter=reporting_pb2.ReportFilter(period_start="2026-10-01", period_end="2026-12-31")))
    table = list(csv.DictReader(io.StringIO(exported.csv.decode("utf-8"))))
    assert exported.filename == "win_rate.csv"
    assert [(r["key"], r["won"], r["won_value"]) for r in table] == [
        ("(all)", "2", "50000"), ("rep.one", "1", "30000"), ("rep.two", "1", "20000")]
    empty = admin.ExportReport(reporting_pb2.ExportReportRequest(
        report=reporting_pb2.REPORT_KIND_LOSS_REASONS, filter=reporting_pb2.ReportFilter(owner_id="nobody")))
    assert empty.csv.decode("utf-8").strip() == "reason,lost,share"
    assert admin.error("ExportReport", reporting_pb2.ExportReportRequest()).code == StatusCode.INVALID_ARGUMENT

    # The dashboards' business gauges: open pipeline by stage and won value so far.
    def scraped():
        with urllib.request.urlopen(f"http://127.0.0.1:{service.http_port}/metrics", timeout=5) as response:
            return response.read().decode()
    assert wait_until(lambda: 'leadflow_reporting_open_pipeline_value{currency="EUR",pipeline_id="new-business",'
                              'stage_id="negotiation"} 50000.0' in scraped()), scraped()[-3000:]
    assert 'leadflow_reporting_won_value{currency="EUR"} 50000.0' in scraped()
