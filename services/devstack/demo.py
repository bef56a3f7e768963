"""The demo ``make run`` shows: a small batch of leads through the public gRPC API, followed from
capture to assignment; the web form with its QR code and a visitor's submission; a spreadsheet
import with its report; a business card read by OCR; the funnel; a sales history imported and
reported on (win rate, cycle, forecast); one lead converted and its lead 360 timeline; and two more
leads left in the reps' inboxes for the web console."""
import csv
import io
import json
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import grpc
from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict
from leadflow.capture.v1 import capture_pb2
from leadflow.common.v1 import common_pb2
from leadflow.opportunity.v1 import opportunity_pb2
from leadflow.reporting.v1 import reporting_pb2
from leadflow.routing.v1 import routing_pb2
from leadflow.scoring.v1 import scoring_pb2

from services.cli import events
from services.cli.history import history_requests

# (rep id, name, team, territories, time zone): the China team works Shanghai hours, the
# international team covers everywhere else.
DEMO_REPS = (("li.na", "Li Na", "sales-cn", ["CN", "HK", "TW"], "Asia/Shanghai"),
             ("zhang.wei", "Zhang Wei", "sales-cn", ["CN"], "Asia/Shanghai"),
             ("anna.schmidt", "Anna Schmidt", "sales-intl", [], "Europe/Berlin"),
             ("raj.iyer", "Raj Iyer", "sales-intl", [], "Asia/Kolkata"))
WORKWEEK = {day: "09:00-18:00" for day in ("mon", "tue", "wed", "thu", "fri")}
DEMO_POLICY = {
    "rules": [
        {"id": "greater-china", "description": "Chinese-speaking leads to the China team, by territory",
         "when": {"field": "country", "in": ["CN", "HK", "TW"]}, "team": "sales-cn", "match_rep": ["territory"],
         "strategy": "sticky", "then": "weighted_round_robin"},
        {"id": "hot-international", "when": {"field": "score.total", "gte": 80}, "team": "sales-intl",
         "strategy": "least_loaded", "sla_minutes": 60},
        {"id": "international", "team": "sales-intl"},
    ],
    "sla": {"first_response_minutes": 120, "warning_percent": 75, "holidays": ["2027-01-01"]},
    "escalation": {"action": "reassign", "max_hops": 2},
}

DEMO_LEADS = (
    dict(email="chen.jie@haier-robotics.cn", phone="+86 138 0013 8000", first_name="Jie", last_name="Chen",
         company="Haier Robotics", title="CTO", country="CN", industry="manufacturing", company_size=1200,
         source="demo_request"),
    dict(email="m.keller@logistik-nord.de", phone="+49 40 1234567", first_name="Martin", last_name="Keller",
         company="Logistik Nord", title="Head of Operations", country="DE", industry="logistics",
         company_size=300, source="webinar"),
    dict(email="sarah@brightpath.io", first_name="Sarah", last_name="Ng", company="BrightPath",
         title="Founder", country="SG", industry="software", company_size=60, source="referral"),
    dict(email="wang.fang@gmail.com", first_name="Fang", last_name="Wang", title="Student", country="CN",
         source="google"),
    dict(email="j.doe@student.uni-example.edu", first_name="John", last_name="Doe", country="US",
         source="google"),
    dict(email="priya@finedge.in", phone="+91 98765 43210", first_name="Priya", last_name="Raman",
         company="FinEdge", title="VP Finance", country="IN", industry="finance", company_size=800,
         source="event", medium="event", campaign="Fintech Summit Mumbai"),
)


def ensure_routing(client) -> None:
    """Teams, reps with territories and working hours, and a routing policy: routing as data."""
    for team_id, name, manager in (("sales-cn", "China sales", "li.na"),
                                   ("sales-intl", "International sales", "anna.schmidt")):
        client.routing.PutTeam(routing_pb2.PutTeamRequest(team=routing_pb2.Team(
            team_id=team_id, name=name, managers=[manager])))
    for rep_id, name, team, territories, time_zone in DEMO_REPS:
        client.routing.PutRep(routing_pb2.PutRepRequest(rep=routing_pb2.Rep(
            rep_id=rep_id, name=name, team=team, email=f"{rep_id}@leadflow.example", territories=territories,
            time_zone=time_zone, working_hours=WORKWEEK)))
    definition = struct_pb2.Struct()
    definition.update(DEMO_POLICY)
    live = client.routing.GetRoutingPolicy(routing_pb2.GetRoutingPolicyRequest()).policy
    if MessageToDict(live.definition) != MessageToDict(definition):
        client.routing.PutRoutingPolicy(routing_pb2.PutRoutingPolicyRequest(definition=definition))


def explain_assignment(rows) -> None:
    """Why did this rep get this lead? The decision record answers it."""
    row = next((r for r in rows if r["assignment"] is not None), None)
    if row is None:
        return
    assignment = row["assignment"]
    print(f"\nwhy {assignment.rep_id} got {row['lead'].email} ({assignment.policy_version}):")
    print(f"  {assignment.reason}")
    for candidate in assignment.considered:
        print(f"  {candidate.rep_id:14} {candidate.skipped_reason or 'eligible'}")
    due = assignment.task.due_at.ToDatetime()
    print(f"  first response due {due:%a %Y-%m-%d %H:%M} UTC (business hours on the rep's calendar)")


def _as_new_person(fields: dict, run_id: str) -> dict:
    """Each demo run's leads are new people: capture would merge a known email or phone into the
    lead of an earlier run."""
    local, domain = fields["email"].split("@")
    fields["email"] = f"{local}+{run_id}@{domain}"
    if fields.get("phone"):
        fields["phone"] = fields["phone"][:-4] + str(int(run_id, 16) % 10_000).zfill(4)
    return fields


def submit(client, run_id: str) -> list:
    leads = []
    for index, fields in enumerate(DEMO_LEADS):
        fields = _as_new_person(dict(fields), run_id)
        attribution = common_pb2.Attribution(source=fields.pop("source"), medium=fields.pop("medium", ""),
                                             campaign=fields.pop("campaign", ""))
        response = client.capture.SubmitLead(capture_pb2.SubmitLeadRequest(
            lead=capture_pb2.LeadInput(attribution=attribution, **fields),
            idempotency_key=f"demo-{run_id}-{index}"))
        leads.append(response.lead)
    return leads


def follow(client, leads, timeout: float = 30.0) -> list:
    """Poll until every lead is scored and every qualified lead assigned."""
    rows = {lead.lead_id: {"lead": lead, "score": None, "assignment": None} for lead in leads}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for lead_id, row in rows.items():
            if row["score"] is None:
                try:
                    row["score"] = client.scoring.GetLeadScore(scoring_pb2.GetLeadScoreRequest(lead_id=lead_id)).score
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.NOT_FOUND:
                        raise
            if row["score"] is not None and row["score"].qualified and row["assignment"] is None:
                try:
                    row["assignment"] = client.routing.GetAssignment(
                        routing_pb2.GetAssignmentRequest(lead_id=lead_id)).assignment
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.NOT_FOUND:
                        raise
        if all(r["score"] is not None and (not r["score"].qualified or r["assignment"] is not None)
               for r in rows.values()):
            break
        time.sleep(0.05)
    return list(rows.values())


def print_report(rows, funnel) -> None:
    print(f"\n{'lead':44} {'source':13} {'score':>5} {'grade':5}  {'MQL':3}  {'assigned to':12} "
          f"{'capture->assign':>15}")
    for row in rows:
        lead, score, assignment = row["lead"], row["score"], row["assignment"]
        latency = ""
        if assignment is not None:
            seconds = (assignment.assigned_at.ToDatetime() - assignment.lead_captured_at.ToDatetime()).total_seconds()
            latency = f"{seconds * 1000:.0f} ms"
        print(f"{lead.email:44} {lead.attribution.source:13} {score.total if score else '-':>5} "
              f"{score.grade if score else '-':5}  "
              f"{'yes' if score and score.qualified else 'no':3}  "
              f"{assignment.rep_id if assignment else '-':12} {latency:>15}")
    print("\nfunnel:")
    for step in funnel.steps:
        print(f"  {reporting_pb2.FunnelStage.Name(step.stage).removeprefix('FUNNEL_STAGE_').lower():16} "
              f"{step.leads:6}  {step.conversion_from_previous:6.0%}")


def show_engagement(client, rows, timeout: float = 15.0) -> None:
    """A lead below the threshold requests a demo and reads the pricing page: its score rises with
    every rule explained, and the model's tag rules mark its intent."""
    row = next((r for r in rows if r["score"] is not None and not r["score"].qualified), None)
    if row is None:
        return
    lead_id, before = row["lead"].lead_id, row["score"]
    for kind in ("DEMO_REQUEST", "PRICING_PAGE_VIEW", "PRICING_PAGE_VIEW", "PRICING_PAGE_VIEW"):
        client.capture.RecordActivity(capture_pb2.RecordActivityRequest(
            lead_id=lead_id, type=capture_pb2.ActivityType.Value(f"ACTIVITY_TYPE_{kind}"),
            activity_id=f"demo-{uuid.uuid4().hex[:12]}"))
    deadline, after = time.monotonic() + timeout, before
    while time.monotonic() < deadline and sum(r.count for r in after.reasons) < 4:
        time.sleep(0.2)
        after = client.scoring.GetLeadScore(scoring_pb2.GetLeadScoreRequest(lead_id=lead_id)).score
    print(f"\n{row['lead'].email} requested a demo and viewed pricing three times:")
    print(f"  score {before.total} ({before.grade}) -> {after.total} ({after.grade}), "
          f"{'MQL' if after.qualified else 'not yet MQL'} under {after.model_version}; tags {', '.join(after.tags)}")
    for reason in after.reasons:
        print(f"  {reason.points:+4}  {reason.rule_id:32} {reason.description}")


DEMO_FORM_ID = "demo-contact-sales"
IMPORT_ROWS = 200


def demo_form(client) -> capture_pb2.Form:
    """The web form the demo shows; PutForm keeps its public key, so its URL and QR code stay valid."""
    form = capture_pb2.Form(
        form_id=DEMO_FORM_ID, name="Talk to Leadflow sales / 联系销售", language="en", default_region="CN",
        consent_text="I agree that Leadflow may contact me about its products. You can withdraw at any time.",
        tags=["price-sensitive"], attribution=common_pb2.Attribution(source="website", medium="form"),
        thank_you_message="Thank you! A sales rep will call you within two business hours.",
        fields=[capture_pb2.FormField(name="email", type="email", label="Work email", required=True),
                capture_pb2.FormField(name="phone", type="tel", label="Mobile"),
                capture_pb2.FormField(name="first_name", type="text", label="First name"),
                capture_pb2.FormField(name="last_name", type="text", label="Last name"),
                capture_pb2.FormField(name="company", type="text", label="Company"),
                capture_pb2.FormField(name="custom.team_size", type="select", label="Sales team size",
                                      options=["1-10", "11-50", "51-200", "200+"])])
    return client.capture.PutForm(capture_pb2.PutFormRequest(form=form)).form


def show_form(form, run_id: str, state_dir: Path) -> None:
    """Fetch the form page and its QR code as a browser would, and post one visitor's submission."""
    qr_path = state_dir / "demo-form-qr.png"
    with urllib.request.urlopen(f"{form.qr_url}?source=expo-shanghai", timeout=10) as response:
        qr_path.write_bytes(response.read())
    with urllib.request.urlopen(form.url, timeout=10) as response:
        page_bytes = len(response.read())
    body = urllib.parse.urlencode({
        "email": f"visitor+{run_id}@globex-trading.cn", "first_name": "Mei", "last_name": "Lin",
        "company": "Globex Trading", "custom.team_size": "11-50", "consent": "on"}).encode()
    request = urllib.request.Request(f"{form.url}?source=expo-shanghai", data=body, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        lead_id = json.loads(response.read())["lead_id"]
    print(f"\nweb form:   {form.url}  ({page_bytes} bytes of embeddable HTML)")
    print(f"QR code:    {form.qr_url}?source=expo-shanghai  (saved to {qr_path})")
    print(f"a visitor posted the form -> lead {lead_id}, source expo-shanghai, consent text recorded")


def import_demo_file(client, run_id: str):
    """A spreadsheet export as sales teams have them: messy values, and two rows that cannot be leads."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["Full Name", "E-mail", "Mobile", "Company", "Country", "Lead Source", "Employees", "Tags"])
    for row in range(IMPORT_ROWS):
        writer.writerow([f"Imported Person{row}", f"person{row}+{run_id}@importco{row % 40}.com", "",
                         f"ImportCo {row % 40}", ("China", "DE", "India", "Select")[row % 4],
                         ("Google", "google", "Trade Show", "Select")[row % 4], ("50-200", "1,200", "", "12")[row % 4],
                         "import-demo"])
    writer.writerow(["No Contact", "", "", "Nobody Ltd", "CN", "Google", "", ""])
    writer.writerow(["Bad Mail", "not-an-email", "", "X", "CN", "Google", "", ""])
    content = buffer.getvalue().encode()
    messages = [capture_pb2.ImportLeadFileRequest(header=capture_pb2.ImportHeader(
        filename="trade-show-export.csv", attribution=common_pb2.Attribution(source="spreadsheet")))]
    messages += [capture_pb2.ImportLeadFileRequest(chunk=content[i:i + 65536]) for i in range(0, len(content), 65536)]
    report = client.capture.ImportLeadFile(iter(messages))
    print(f"\nimported trade-show-export.csv ({report.rows} rows): {report.accepted} new leads, "
          f"{report.merged} merged, {report.unchanged} unchanged, {report.rejected} rejected")
    for rejected in report.rejected_rows:
        print(f"  row {rejected.row} ({rejected.column or '-'}): {rejected.reason}")


def scan_demo_card(client) -> None:
    from services.devstack.sample_cards import render_card, sample_card
    card = render_card(sample_card("li-na"), layout="left", fmt="JPEG")
    response = client.capture.ScanBusinessCard(capture_pb2.ScanBusinessCardRequest(
        image=card, attribution=common_pb2.Attribution(source="business_card", campaign="Expo Shanghai"),
        tags=["expo-shanghai"]), timeout=60)
    fields = ", ".join(f"{f.name}={f.value} ({f.confidence:.0%})" for f in response.fields)
    outcome = "new lead" if response.created else "merged into a known lead" if response.merged else "no lead"
    print(f"\nbusiness card (Chinese, OCR): {fields}\n  -> {outcome}{' marked for review' * response.needs_review}")


def import_sales_history(client, run_id: str) -> None:
    """The China team's deals so far this year, as their old CRM exports them, imported so that
    reports start with the past."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["Deal ID", "Owner", "Account", "Product", "Stage", "Created", "Closed", "Amount"])
    for n in range(24):
        stage = ("Won", "Won", "Lost", "Negotiation")[n % 4]
        writer.writerow([f"{run_id}-{n}", ("Li Na", "Zhang Wei")[n % 2], f"Customer {n % 7}",
                         ("Robot arm", "Vision kit")[n % 2], stage, f"2026-{1 + n % 9:02d}-{3 + n:02d}",
                         f"2026-{2 + n % 9:02d}-{3 + n:02d}" if stage != "Negotiation" else "",
                         str(20000 + 2500 * n) if stage != "Lost" else ""])
    header = opportunity_pb2.OpportunityImportHeader(
        currency="CNY", external_id_prefix="old-crm:", default_team="sales-cn",
        owner_ids={"Li Na": "li.na", "Zhang Wei": "zhang.wei"}, stage_map={"Negotiation": "negotiation"})
    report = client.opportunity.ImportOpportunities(history_requests(
        header, {"opportunities": buffer.getvalue().encode()}))
    stages = ", ".join(f"{stage} {n}" for stage, n in sorted(report.by_stage.items()))
    print(f"\nimported the China team's 2026 deals (old-crm export, {report.rows} rows): "
          f"{report.imported} opportunities ({stages}), {report.accounts_created} accounts")


def show_sales_reports(client, timeout: float = 20.0) -> None:
    """What a manager reads once the history is in: win rate per rep, cycle, and the forecast."""
    period = reporting_pb2.ReportFilter(period_start="2026-01-01", period_end="2026-12-31", team="sales-cn",
                                        currency="CNY")
    deadline = time.monotonic() + timeout
    while True:
        win = client.reporting.GetWinRate(reporting_pb2.GetWinRateRequest(filter=period,
                                                                         group_by=reporting_pb2.GROUP_BY_OWNER))
        if win.total.closed >= 18 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    print("\nwin rate 2026, China team (reporting, from the imported history's events):")
    for row in [*win.rows, win.total]:
        print(f"  {row.key or 'team':12} {row.won:3} won of {row.closed:3} closed  {row.win_rate:5.0%}  "
              f"won CNY {row.won_value}")
    cycle = client.reporting.GetSalesCycle(reporting_pb2.GetSalesCycleRequest(filter=period)).total
    print(f"  sales cycle of won deals: mean {cycle.won_mean_days:.1f} days, median {cycle.won_median_days:.0f}")
    forecast = client.reporting.GetForecast(reporting_pb2.GetForecastRequest(filter=reporting_pb2.ReportFilter(
        team="sales-cn", currency="CNY")))
    print("  forecast: " + ", ".join(f"{c.category} CNY {c.weighted_amount} ({c.opportunities})"
                                     for c in forecast.categories if c.opportunities))


def show_event_stream(client, run_id: str) -> None:
    """The won deals an ERP following the event stream (leadflow.events.v1) receives: the imported
    history's and those won in Leadflow."""
    first = events.first_request("earliest", ["opportunity_imported", "opportunity_won"], "", "")
    out = io.StringIO()
    metadata = [("authorization", f"Bearer {client.token}")] if client.token else []
    events.tail(client.event_stream, metadata, first, out, idle_exit=3)
    won = [line for line in map(json.loads, out.getvalue().splitlines()) if line["event"].get("status") == "won"]
    this_run = [line for line in won if f"{run_id}-" in line["event"].get("external_id", "")]
    print(f"\nevent stream (what an ERP following leadflow.events.v1 receives): {len(won)} won deals from the "
          f"earliest position, {len(this_run)} from this import; the last three:")
    for line in won[-3:]:
        deal = line["event"]
        print(f"  position {line['position']:5}  {line['event_type']:21} {deal.get('account_name', ''):12} "
              f"{deal.get('currency', '')} {deal.get('amount')}")
    print("  follow it: .venv/bin/leadflow events tail --types opportunity_won --from earliest")


def convert_and_show_timeline(client, rows, timeout: float = 15.0) -> None:
    """The first assigned lead converted into an opportunity, then its lead 360 timeline."""
    row = next((r for r in rows if r["assignment"] is not None and r["lead"].company), None)
    if row is None:
        return
    lead = row["lead"]
    deadline = time.monotonic() + timeout
    while True:  # the opportunity service learns the owner from routing's event
        try:
            converted = client.opportunity.ConvertLead(opportunity_pb2.ConvertLeadRequest(
                lead_id=lead.lead_id, account=opportunity_pb2.Account(name=lead.company, country=lead.country),
                contact=opportunity_pb2.Contact(first_name=lead.first_name, last_name=lead.last_name, email=lead.email),
                opportunity=opportunity_pb2.OpportunityDraft(name=f"{lead.company} - first order", amount="180000",
                                                             currency="CNY")))
            break
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    opportunity = converted.opportunity
    print(f"\nconverted {lead.email} into opportunity {opportunity.opportunity_id} ({opportunity.stage_id}, "
          f"{opportunity.probability}%, owner {opportunity.owner_id})")
    deadline = time.monotonic() + timeout
    while True:
        entries = client.reporting.GetLeadTimeline(reporting_pb2.GetLeadTimelineRequest(lead_id=lead.lead_id)).entries
        if any(e.event_type == "lead_converted" for e in entries) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    print(f"lead 360 of {lead.email}:")
    for entry in entries:
        print(f"  {entry.occurred_at.ToDatetime():%H:%M:%S.%f}"[:-3] + f"  {entry.service:11} {entry.summary}")


# Left for the web console: fresh leads in the China team's inboxes, their first response still due.
CONSOLE_LEADS = (
    dict(email="zhou.min@xinghe-auto.cn", phone="+86 139 1234 5678", first_name="Min", last_name="Zhou",
         company="Xinghe Automotive", title="VP Engineering", country="CN", industry="manufacturing",
         company_size=2500, source="demo_request"),
    dict(email="gao.lei@lanshan-pharma.cn", first_name="Lei", last_name="Gao", company="Lanshan Pharma",
         title="CIO", country="CN", industry="healthcare", company_size=900, source="referral"),
)


def leave_leads_for_the_console(client, run_id: str) -> None:
    """Two more Chinese leads, routed and left untouched, so a rep logging in to the console finds
    them in "My leads" with the SLA clock running."""
    leads = []
    for index, fields in enumerate(CONSOLE_LEADS):
        fields = _as_new_person(dict(fields), run_id)
        attribution = common_pb2.Attribution(source=fields.pop("source"))
        leads.append(client.capture.SubmitLead(capture_pb2.SubmitLeadRequest(
            lead=capture_pb2.LeadInput(attribution=attribution, **fields),
            idempotency_key=f"demo-console-{run_id}-{index}")).lead)
    print("\nwaiting in the web console's inboxes:")
    for row in follow(client, leads):
        assignment = row["assignment"]
        owner = assignment.rep_id if assignment is not None else "(fallback queue)"
        print(f"  {row['lead'].email:44} -> {owner}")


def run_demo(client, state_dir: Path = Path(".leadflow")) -> None:
    ensure_routing(client)
    run_id = uuid.uuid4().hex[:8]
    leads = submit(client, run_id)
    print(f"submitted {len(leads)} demo leads through capture.SubmitLead")
    show_form(demo_form(client), run_id, state_dir)
    import_demo_file(client, run_id)
    scan_demo_card(client)
    rows = follow(client, leads)
    time.sleep(0.5)  # let reporting's projection catch up with the last events
    print_report(rows, client.reporting.GetFunnel(reporting_pb2.GetFunnelRequest()))
    explain_assignment(rows)
    show_engagement(client, rows)
    import_sales_history(client, run_id)
    show_sales_reports(client)
    show_event_stream(client, run_id)
    convert_and_show_timeline(client, rows)
    leave_leads_for_the_console(client, run_id)
