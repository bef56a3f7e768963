"""The public capture channels on the running platform: what a web form and a spreadsheet bring in
is scored, routed and reported like any other lead."""
import json
import urllib.parse
import urllib.request

from leadflow.capture.v1 import capture_pb2
from leadflow.common.v1 import common_pb2
from leadflow.reporting.v1 import reporting_pb2
from leadflow.routing.v1 import routing_pb2

from tests.e2e.conftest import new_batch
from tests.support import wait_until


def test_a_form_submission_and_an_imported_file_are_assigned_and_counted(platform, reps):
    admin = platform.client("admin")
    batch = new_batch()
    form = admin.capture.PutForm(capture_pb2.PutFormRequest(form=capture_pb2.Form(
        form_id=f"e2e-{batch}", name="Talk to sales", attribution=common_pb2.Attribution(source=batch),
        fields=[capture_pb2.FormField(name="email", type="email", label="Email", required=True),
                capture_pb2.FormField(name="title", type="text", label="Title"),
                capture_pb2.FormField(name="company_size", type="number", label="Employees"),
                capture_pb2.FormField(name="industry", type="text", label="Industry")]))).form
    # The platform listens on ports of its own; the form's URL names the configured public address.
    capture_http = platform.platform.of("capture")[0].http_port
    body = urllib.parse.urlencode({"email": f"cto@{batch}.example.com", "title": "CTO", "company_size": "900",
                                   "industry": "software"}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{capture_http}/f/{form.public_key}?utm_medium=qr", data=body,
                                     headers={"Accept": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        form_lead = json.loads(response.read())["lead_id"]

    csv_file = "Email,Job Title,Employees,Industry\r\n" + "".join(
        f"buyer{i}@{batch}-import.example.com,Head of IT,1200,software\r\n" for i in range(5))
    report = admin.capture.ImportLeadFile(iter([
        capture_pb2.ImportLeadFileRequest(header=capture_pb2.ImportHeader(
            filename="leads.csv", attribution=common_pb2.Attribution(source=batch))),
        capture_pb2.ImportLeadFileRequest(chunk=csv_file.encode())]))
    assert (report.accepted, report.rejected) == (5, 0)

    def assigned():
        try:
            return admin.routing.GetAssignment(routing_pb2.GetAssignmentRequest(lead_id=form_lead)).assignment
        except Exception:
            return None
    assert wait_until(assigned, timeout=30).rep_id in reps

    def funnel():
        steps = admin.reporting.GetFunnel(reporting_pb2.GetFunnelRequest(source=batch)).steps
        return {reporting_pb2.FunnelStage.Name(step.stage): step.leads for step in steps}
    assert wait_until(lambda: funnel().get("FUNNEL_STAGE_ASSIGNED") == 6, timeout=30), funnel()
    assert funnel()["FUNNEL_STAGE_CAPTURED"] == 6
    admin.close()
