"""The demo ``make run`` shows: a small batch of leads through the public gRPC API, followed from
capture to assignment, then the funnel."""
import time
import uuid

import grpc
from leadflow.capture.v1 import capture_pb2
from leadflow.common.v1 import common_pb2
from leadflow.reporting.v1 import reporting_pb2
from leadflow.routing.v1 import routing_pb2
from leadflow.scoring.v1 import scoring_pb2

DEMO_REPS = (("li.na", "Li Na"), ("zhang.wei", "Zhang Wei"), ("anna.schmidt", "Anna Schmidt"))

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


def ensure_reps(client) -> None:
    for rep_id, name in DEMO_REPS:
        client.routing.PutRep(routing_pb2.PutRepRequest(rep=routing_pb2.Rep(
            rep_id=rep_id, name=name, team="sales-cn", email=f"{rep_id}@leadflow.example")))


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
    print(f"\n{'lead':44} {'source':13} {'score':>5}  {'MQL':3}  {'assigned to':12} {'capture->assign':>15}")
    for row in rows:
        lead, score, assignment = row["lead"], row["score"], row["assignment"]
        latency = ""
        if assignment is not None:
            seconds = (assignment.assigned_at.ToDatetime() - assignment.lead_captured_at.ToDatetime()).total_seconds()
            latency = f"{seconds * 1000:.0f} ms"
        print(f"{lead.email:44} {lead.attribution.source:13} {score.total if score else '-':>5}  "
              f"{'yes' if score and score.qualified else 'no':3}  "
              f"{assignment.rep_id if assignment else '-':12} {latency:>15}")
    print("\nfunnel:")
    for step in funnel.steps:
        print(f"  {reporting_pb2.FunnelStage.Name(step.stage).removeprefix('FUNNEL_STAGE_').lower():10} "
              f"{step.leads:6}  {step.conversion_from_previous:6.0%}")


def run_demo(client) -> None:
    ensure_reps(client)
    leads = submit(client, uuid.uuid4().hex[:8])
    print(f"submitted {len(leads)} demo leads through capture.SubmitLead")
    rows = follow(client, leads)
    time.sleep(0.5)  # let reporting's projection catch up with the last events
    print_report(rows, client.reporting.GetFunnel(reporting_pb2.GetFunnelRequest()))
