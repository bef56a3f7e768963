"""Every capture channel against the real stores: batches, web forms (HTML, QR, posts, abuse guards),
signed webhooks, the tracking beacon and visitor stitching, file import, fuzzy de-duplication,
merge/unmerge, search, and owners from routing."""
import hashlib
import hmac
import io
import json
import random
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request

import pymongo
import pytest
from grpc import StatusCode
from leadflow.capture.v1 import capture_pb2, capture_pb2_grpc
from leadflow.common.v1 import common_pb2
from openpyxl import Workbook

from services.capture.file_import import BATCH_ROWS
from services.capture.models import LeadActivityDocument, LeadDocument
from services.capture.service import CaptureService
from services.common.settings import database_name
from services.common.store import MAX_TRANSACTION_ATTEMPTS
from services.devstack.infrastructure import EmbeddedMongo, free_port
from tests.support import new_event, violations_of, wait_until

WEBHOOK_SECRET = "s3cret-for-tests"


def unique() -> int:
    return random.randrange(10_000_000, 99_999_999)


@pytest.fixture
def capture(run_service, tokens, tap):
    # A queue for everything capture emits, standing in for its consumers: events nobody consumes
    # would stay in the outbox and be re-offered to the broker by every later test's relay.
    tap("capture", "#")
    service = run_service(CaptureService, WEBHOOK_SECRETS=f"adsplatform={WEBHOOK_SECRET}",
                          FORM_RATE_LIMIT_PER_MINUTE=1000)
    service.api = service.grpc(capture_pb2_grpc.CaptureServiceStub, tokens["admin"])
    service.base = f"http://127.0.0.1:{service.http_port}"
    return service


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None):
    """(status, headers, body) of a plain HTTP call, errors included."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def lead_input(**overrides) -> capture_pb2.LeadInput:
    n = unique()
    fields = dict(email=f"buyer.{n}@acme-{n}.com", first_name="Ada", last_name=f"Buyer{n}", company=f"Acme {n}",
                  attribution=common_pb2.Attribution(source="partner"))
    fields.update(overrides)
    return capture_pb2.LeadInput(**fields)


def put_form(service, **overrides) -> capture_pb2.Form:
    form = capture_pb2.Form(
        form_id=f"pricing-{unique()}", name="Talk to sales",
        fields=[capture_pb2.FormField(name="email", type="email", label="Work email", required=True),
                capture_pb2.FormField(name="first_name", type="text", label="First name"),
                capture_pb2.FormField(name="company", type="text", label="Company <b>name</b>"),
                capture_pb2.FormField(name="custom.team_size", type="select", label="Team",
                                      options=["1-10", "11-50", "51+"])],
        consent_text="I agree that Leadflow Demo may contact me about its products.",
        tags=["price-sensitive"], attribution=common_pb2.Attribution(source="website", medium="form"),
        default_region="CN")
    for key, value in overrides.items():
        if isinstance(value, list):
            getattr(form, key)[:] = value
        else:
            setattr(form, key, value)
    return service.api.PutForm(capture_pb2.PutFormRequest(form=form)).form


# ---- SubmitLeads -------------------------------------------------------------------------------

def test_batch_reports_each_item_and_a_bad_item_never_stops_the_good_ones(capture, tap):
    captured = tap("capture", "lead_captured")
    good = lead_input()
    response = capture.api.SubmitLeads(capture_pb2.SubmitLeadsRequest(items=[
        capture_pb2.SubmitLeadRequest(lead=good),
        capture_pb2.SubmitLeadRequest(lead=lead_input(email="nope", phone="")),
        capture_pb2.SubmitLeadRequest(lead=lead_input(), idempotency_key="batch-item-3")]))

    assert (response.created, response.merged, response.rejected) == (2, 0, 1)
    assert [r.index for r in response.results] == [0, 1, 2]
    assert response.results[0].lead.email == good.email
    assert [v.field for v in response.results[1].violations] == ["items[1].lead.email"]
    assert not response.results[1].HasField("lead")
    assert len(captured.collect(2)) == 2


# ---- forms ---------------------------------------------------------------------------------------

def test_form_is_served_as_escaped_html_and_keeps_its_public_key_across_versions(capture):
    form = put_form(capture)
    assert form.version == 1 and form.public_key and form.url.endswith(f"/f/{form.public_key}")

    status, headers, body = http("GET", f"{capture.base}/f/{form.public_key}?source=booth-shanghai")
    page = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "Work email" in page and "Company &lt;b&gt;name&lt;/b&gt;" in page
    assert "I agree that Leadflow Demo may contact me about its products." in page
    assert 'value="booth-shanghai"' in page

    second = put_form(capture, form_id=form.form_id, name="Talk to our sales team")
    assert (second.version, second.public_key) == (2, form.public_key)
    listed = capture.api.ListForms(capture_pb2.ListFormsRequest()).forms
    assert form.form_id in [f.form_id for f in listed]


def test_form_qr_code_is_a_png_that_opens_the_form_with_the_events_source(capture):
    form = put_form(capture)
    status, headers, body = http("GET", f"{capture.base}/f/{form.public_key}/qr.png?source=expo-2026")
    assert status == 200 and headers["Content-Type"] == "image/png" and body.startswith(b"\x89PNG")
    from PIL import Image
    image = Image.open(io.BytesIO(body))
    assert image.width == image.height >= 200


def test_form_post_creates_a_lead_with_consent_text_tags_and_attribution(capture, tap):
    captured = tap("capture", "lead_captured")
    form = put_form(capture)
    email = f"visitor.{unique()}@globex.cn"
    body = urllib.parse.urlencode({"email": email, "first_name": "Li", "company": "Globex",
                                   "custom.team_size": "11-50", "consent": "on", "utm_campaign": "Spring"}).encode()
    status, _, reply = http("POST", f"{capture.base}/f/{form.public_key}?source=expo-2026", body,
                            {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json",
                             "Origin": capture.base})

    assert status == 201, reply
    lead = capture.api.GetLead(capture_pb2.GetLeadRequest(lead_id=json.loads(reply)["lead_id"])).lead
    assert (lead.email, lead.company, lead.custom_fields["team_size"]) == (email, "Globex", "11-50")
    assert (lead.attribution.source, lead.attribution.medium, lead.attribution.campaign) == \
        ("expo-2026", "form", "spring")
    assert list(lead.tags) == ["channel:form", "price-sensitive"]
    assert lead.consent.marketing and lead.consent.text == form.consent_text
    assert lead.touches[0].captured_by == f"form:{form.form_id}"
    [event] = captured.wait_for(lambda e: e["lead_id"] == lead.lead_id)
    assert event["lead"]["tags"] == ["channel:form", "price-sensitive"]


@pytest.mark.parametrize("encoding", ["json", "multipart"])
def test_form_accepts_json_and_multipart(capture, encoding):
    form = put_form(capture)
    email = f"{encoding}.{unique()}@initech.com"
    if encoding == "json":
        body, content_type = json.dumps({"email": email, "first_name": "Peter"}).encode(), "application/json"
    else:
        boundary = "leadflowboundary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\n{email}\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"first_name\"\r\n\r\nPeter\r\n"
                f"--{boundary}--\r\n").encode()
        content_type = f"multipart/form-data; boundary={boundary}"
    status, _, reply = http("POST", f"{capture.base}/f/{form.public_key}", body,
                            {"Content-Type": content_type, "Accept": "application/json"})
    assert status == 201, reply
    assert LeadDocument.objects(email=email).count() == 1


def test_form_refuses_bad_input_by_field_and_stores_nothing(capture):
    form = put_form(capture)
    before = LeadDocument.objects.count()
    body = json.dumps({"email": "not-an-email", "custom.team_size": "1000+"}).encode()
    status, _, reply = http("POST", f"{capture.base}/f/{form.public_key}", body,
                            {"Content-Type": "application/json"})
    assert status == 422
    fields = {v["field"] for v in json.loads(reply)["violations"]}
    assert {"fields.email", "fields.custom.team_size"} <= fields
    assert LeadDocument.objects.count() == before


def test_form_guards_honeypot_origin_size_and_unknown_keys(capture):
    form = put_form(capture, allowed_origins=["https://www.leadflow-demo.cn"])
    url = f"{capture.base}/f/{form.public_key}"
    before = LeadDocument.objects.count()
    json_headers = {"Content-Type": "application/json", "Accept": "application/json"}

    bot = json.dumps({"email": f"bot.{unique()}@spam.io", "contact_me_by_fax_only": "yes"}).encode()
    status, _, _ = http("POST", url, bot, {**json_headers, "Origin": "https://www.leadflow-demo.cn"})
    assert status == 201  # the bot learns nothing ...
    assert LeadDocument.objects.count() == before  # ... and nothing is stored

    human = json.dumps({"email": f"human.{unique()}@acme.com"}).encode()
    assert http("POST", url, human, {**json_headers, "Origin": "https://evil.example"})[0] == 403
    assert http("POST", url, b"x" * (70 * 1024), {**json_headers, "Origin": "https://www.leadflow-demo.cn"})[0] == 413
    assert http("POST", f"{capture.base}/f/no-such-key", human, json_headers)[0] == 404
    assert LeadDocument.objects.count() == before
    assert http("POST", url, human, {**json_headers, "Origin": "https://www.leadflow-demo.cn"})[0] == 201


def test_form_rate_limit_answers_429_with_retry_after(run_service, tokens, infra):
    # Its own Redis namespace: the other tests' posts from 127.0.0.1 do not count against this one.
    service = run_service(CaptureService, FORM_RATE_LIMIT_PER_MINUTE=3,
                          REDIS_KEY_PREFIX=f"{infra.redis_prefix}-ratelimit-{unique()}")
    service.api = service.grpc(capture_pb2_grpc.CaptureServiceStub, tokens["admin"])
    form = put_form(service)
    url = f"http://127.0.0.1:{service.http_port}/f/{form.public_key}"
    # Behind no trusted proxy, a forged X-Forwarded-For does not give a client a fresh allowance.
    statuses = [http("POST", url, json.dumps({"email": f"r{i}.{unique()}@acme.com"}).encode(),
                     {"Content-Type": "application/json", "X-Forwarded-For": f"10.0.0.{i}"}) for i in range(5)]
    assert [s for s, _, _ in statuses] == [201, 201, 201, 429, 429]
    assert 1 <= int(statuses[3][1]["Retry-After"]) <= 61
    assert json.loads(statuses[3][2])["error"] == "rate_limited"


def test_invalid_form_definition_names_each_field(capture):
    error = capture.api.error("PutForm", capture_pb2.PutFormRequest(form=capture_pb2.Form(
        form_id="Bad Id!", name="x", allowed_origins=["not a url"],
        fields=[capture_pb2.FormField(name="shoe_size", type="text", label="Shoe")])))
    assert error.code == StatusCode.INVALID_ARGUMENT
    found = violations_of(error.status)
    assert {"form.form_id", "form.allowed_origins[0]", "form.fields[0].name"} <= set(found)


# ---- webhooks --------------------------------------------------------------------------------------

def signed(body: bytes, secret: str = WEBHOOK_SECRET, age: int = 0) -> dict:
    """The headers a webhook source sends: the timestamp and the HMAC of "<timestamp>.<body>"."""
    stamp = str(int(time.time()) - age)
    return {"X-Leadflow-Timestamp": stamp, "X-Leadflow-Signature": "sha256=" + hmac.new(
        secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()}


def test_signed_webhook_creates_a_lead_once_and_a_replay_changes_nothing(capture, tap):
    captured = tap("capture", "lead_captured", "lead_merged")
    email = f"ads.{unique()}@wayne.com"
    body = json.dumps({"email": email, "first_name": "Bruce", "utm_campaign": "Q4 Search",
                       "ad_id": "987654", "预算?": "50万"}).encode()
    headers = {"Content-Type": "application/json", **signed(body), "X-Leadflow-Delivery": f"delivery-{unique()}"}
    url = f"{capture.base}/webhooks/AdsPlatform"

    first_status, _, first = http("POST", url, body, headers)
    second_status, _, second = http("POST", url, body, headers)

    assert (first_status, second_status) == (201, 200)
    assert json.loads(second) == {**json.loads(first), "created": False, "replayed": True}
    lead = LeadDocument.objects.get(email=email)
    assert (lead.source, lead.campaign, lead.custom_fields["ad_id"]) == ("adsplatform", "q4 search", "987654")
    assert "50万" in lead.custom_fields.values()  # an odd question's answer is kept, not the lead refused
    assert list(lead.tags) == ["channel:webhook"]
    assert len(captured.settle()) == 1


def test_webhook_with_a_wrong_signature_or_unknown_source_is_refused(capture):
    email = f"forged.{unique()}@evil.com"
    body = json.dumps({"email": email}).encode()
    base = {"Content-Type": "application/json", "X-Leadflow-Delivery": "d-1"}
    url = f"{capture.base}/webhooks/adsplatform"
    assert http("POST", url, body, {**base, **signed(body, "a-guessed-secret-of-16")})[0] == 401
    assert http("POST", url, body, base)[0] == 401
    assert http("POST", url, body, {**base, **signed(body, age=3600)})[0] == 401  # a captured request, replayed
    assert http("POST", f"{capture.base}/webhooks/unknown", body, {**base, **signed(body)})[0] == 404
    assert LeadDocument.objects(email=email).count() == 0


# ---- behaviour ---------------------------------------------------------------------------------

def test_visitor_activity_is_stitched_to_the_lead_when_the_visitor_fills_in_a_form(capture, tap):
    activity = tap("capture", "lead_activity_recorded")
    visitor = f"v-{unique()}"
    pixel = http("GET", f"{capture.base}/t?" + urllib.parse.urlencode(
        {"visitor_id": visitor, "type": "pricing_page_view", "url": "https://leadflow.example/pricing"}))
    beacon = http("POST", f"{capture.base}/t", json.dumps(
        {"visitor_id": visitor, "type": "content_download", "url": "https://leadflow.example/whitepaper",
         "properties": {"title": "Manufacturing 2026"}}).encode(), {"Content-Type": "application/json"})
    assert pixel[0] == 200 and pixel[1]["Content-Type"] == "image/gif" and beacon[0] == 202
    assert activity.settle(0.5) == []  # anonymous: nobody to announce it for yet

    form = put_form(capture)
    status, _, reply = http("POST", f"{capture.base}/f/{form.public_key}", json.dumps(
        {"email": f"visitor.{unique()}@acme.com", "visitor_id": visitor}).encode(),
        {"Content-Type": "application/json"})
    assert status == 201
    lead_id = json.loads(reply)["lead_id"]

    stitched = activity.wait_for(lambda e: e["lead_id"] == lead_id and e["type"] == "content_download")
    assert stitched[0]["stitched"] and stitched[0]["properties"] == {"title": "Manufacturing 2026"}
    assert {a.type for a in LeadActivityDocument.objects(lead_id=lead_id)} == {"pricing_page_view", "content_download"}
    # Once known, the visitor's next page view is the lead's at once.
    http("GET", f"{capture.base}/t?" + urllib.parse.urlencode({"visitor_id": visitor, "type": "page_view",
                                                                "url": "https://leadflow.example/demo"}))
    assert activity.wait_for(lambda e: e["lead_id"] == lead_id and e["type"] == "page_view")


def test_beacon_hands_a_new_visitor_a_cookie_that_the_form_post_reads_back(capture, tap):
    activity = tap("capture", "lead_activity_recorded")
    status, headers, body = http("POST", f"{capture.base}/t", json.dumps(
        {"type": "pricing_page_view", "url": "https://leadflow.example/pricing"}).encode(),
        {"Content-Type": "application/json"})
    visitor = json.loads(body)["visitor_id"]
    assert status == 202 and f"lf_vid={visitor}" in headers["Set-Cookie"] and "HttpOnly" in headers["Set-Cookie"]

    form = put_form(capture)
    status, _, reply = http("POST", f"{capture.base}/f/{form.public_key}", json.dumps(
        {"email": f"cookie.{unique()}@acme.com"}).encode(),
        {"Content-Type": "application/json", "Cookie": f"lf_vid={visitor}"})
    lead_id = json.loads(reply)["lead_id"]
    assert activity.wait_for(lambda e: e["lead_id"] == lead_id and e["type"] == "pricing_page_view")


def test_a_browser_post_with_mistakes_gets_the_form_back_with_its_answers_and_the_problems(capture):
    form = put_form(capture)
    body = urllib.parse.urlencode({"email": "li.na-at-globex.cn", "company": "Globex"}).encode()
    status, headers, page = http("POST", f"{capture.base}/f/{form.public_key}", body,
                                 {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
    assert status == 422 and headers["Content-Type"].startswith("text/html")
    assert 'value="Globex"' in page.decode() and "li.na-at-globex.cn" in page.decode()
    assert "valid email" in page.decode()


def test_record_activity_by_email_is_idempotent_and_names_bad_fields(capture, tap):
    activity = tap("capture", "lead_activity_recorded")
    lead = capture.api.SubmitLead(capture_pb2.SubmitLeadRequest(lead=lead_input())).lead
    request = capture_pb2.RecordActivityRequest(activity_id=f"esp-{unique()}", email=lead.email.upper(),
                                                type=capture_pb2.ACTIVITY_TYPE_EMAIL_OPEN)
    first = capture.api.RecordActivity(request)
    again = capture.api.RecordActivity(request)
    assert (first.lead_id, first.recorded, again.recorded) == (lead.lead_id, True, False)
    assert len(activity.settle()) == 1

    error = capture.api.error("RecordActivity", capture_pb2.RecordActivityRequest(
        type=capture_pb2.ACTIVITY_TYPE_PAGE_VIEW, lead_id=lead.lead_id))
    assert error.code == StatusCode.INVALID_ARGUMENT and set(violations_of(error.status)) == {"url"}


# ---- file import -----------------------------------------------------------------------------------

def import_file(service, content: bytes, filename: str, chunk: int = 64 * 1024, **header):
    header.setdefault("attribution", common_pb2.Attribution(source="trade-show"))
    messages = [capture_pb2.ImportLeadFileRequest(header=capture_pb2.ImportHeader(filename=filename, **header))]
    messages += [capture_pb2.ImportLeadFileRequest(chunk=content[i:i + chunk]) for i in range(0, len(content), chunk)]
    return service.api.ImportLeadFile(iter(messages))


def test_csv_import_reports_rows_and_a_reimport_creates_nothing(capture, tap):
    n = unique()
    csv_text = ("Full Name,E-mail,Mobile,Company,Country,Lead Source,Tags\r\n"
                f"Anna Schmidt,anna.{n}@siemens-{n}.de,,Siemens {n},Germany,Google,\"cad, plm\"\r\n"
                f"Li Na,,+86 138 {n},Haier {n},CN,google,\r\n"
                f"Bad Row,not-an-email,,X,DE,Select,\r\n"
                f"No Contact,,,Nobody {n},DE,Select,\r\n"
                f"Anna Schmidt,ANNA.{n}@siemens-{n}.de,,,Germany,Google,webinar\r\n")
    captured = tap("capture", "lead_captured", "lead_merged")

    report = import_file(capture, csv_text.encode(), "leads.csv", chunk=100)

    assert (report.rows, report.accepted, report.merged, report.rejected) == (5, 2, 1, 2)
    assert [(r.row, r.column) for r in report.rejected_rows] == [(4, "E-mail"), (5, "E-mail")]
    assert report.mapping["E-mail"] == "email" and report.mapping["Full Name"] == "full_name"
    anna = LeadDocument.objects.get(email=f"anna.{n}@siemens-{n}.de")
    assert (anna.first_name, anna.last_name, anna.country, anna.source) == ("Anna", "Schmidt", "DE", "google")
    assert sorted(anna.tags) == ["cad", "channel:import", "plm", "webinar"]
    li_na = LeadDocument.objects.get(phone_e164=f"+86138{n}")
    assert li_na.source == "google"
    events = captured.collect(2)
    assert sorted(e["event_type"] for e in events) == ["lead_captured", "lead_captured"]

    again = import_file(capture, csv_text.encode(), "leads.csv")
    assert (again.accepted, again.merged, again.unchanged, again.rejected) == (0, 0, 3, 2)
    assert LeadDocument.objects(email=f"anna.{n}@siemens-{n}.de").count() == 1
    assert len(captured.settle()) == 2


@pytest.fixture
def fault_injecting_store(tmp_path):
    """A store of its own, where the server's fault injection (which MongoDB has too) reaches no other test."""
    mongo = EmbeddedMongo(tmp_path / "data", free_port(), tmp_path / "secantusdb.log",
                          options=("--enable-test-commands",)).start()
    yield mongo
    mongo.stop()


def test_an_import_the_store_stops_says_what_is_kept_and_the_same_file_finishes_it(fault_injecting_store, run_service,
                                                                                     infra, tokens):
    mongo = fault_injecting_store
    service = run_service(CaptureService, MONGODB_URI=mongo.uri)
    service.api = service.grpc(capture_pb2_grpc.CaptureServiceStub, tokens["admin"])
    server = pymongo.MongoClient(mongo.uri)
    leads = server[database_name(infra.db_prefix, "capture")][LeadDocument._get_collection_name()]
    rows = BATCH_ROWS + 50
    csv_text = "Email,Company\r\n" + "".join(f"buyer{i}@firm{i}.example.com,Firm {i}\r\n" for i in range(rows))
    # Every attempt to commit the second batch is refused, as while another writer holds its documents.
    server.admin.command({"configureFailPoint": "failCommand", "mode": {"skip": 1, "times": MAX_TRANSACTION_ATTEMPTS},
                          "data": {"failCommands": ["commitTransaction"], "errorCode": 112,
                                   "errorLabels": ["TransientTransactionError"]}})
    import_id = f"fair-{unique()}"
    try:
        stopped = service.api.error("ImportLeadFile", iter([
            capture_pb2.ImportLeadFileRequest(header=capture_pb2.ImportHeader(
                filename="leads.csv", attribution=common_pb2.Attribution(source="trade-show"), import_id=import_id)),
            capture_pb2.ImportLeadFileRequest(chunk=csv_text.encode())]))
    finally:
        server.admin.command({"configureFailPoint": "failCommand", "mode": "off"})

    assert stopped.code == StatusCode.ABORTED
    assert f"the file is imported up to row {BATCH_ROWS + 1} ({BATCH_ROWS:,} rows kept)" in stopped.message
    assert leads.count_documents({}) == BATCH_ROWS
    # Whoever follows the import's progress (the CLI's bar, the console) learns the same.
    progress = import_progress(service, import_id)
    assert (progress.state, progress.stored_through_row, progress.rows_stored, progress.rows_expected) == \
        (common_pb2.IMPORT_STATE_STOPPED, BATCH_ROWS + 1, BATCH_ROWS, rows)
    assert progress.message == stopped.message

    finished = import_file(service, csv_text.encode(), "leads.csv", import_id=import_id)
    assert (finished.accepted, finished.unchanged, finished.rejected) == (rows - BATCH_ROWS, BATCH_ROWS, 0)
    assert leads.count_documents({}) == rows
    progress = import_progress(service, import_id)
    assert (progress.state, progress.rows_read, progress.rows_stored, progress.stored_through_row, progress.message) \
        == (common_pb2.IMPORT_STATE_DONE, rows, rows, rows + 1, "")
    server.close()


def import_progress(service, import_id: str):
    return service.api.GetImportProgress(capture_pb2.GetImportProgressRequest(import_id=import_id)).progress


def test_import_progress_is_followed_by_the_id_the_client_chose(capture):
    n = unique()
    csv_text = f"Email\r\nada.{n}@example.com\r\nnot-an-email\r\n"
    report = import_file(capture, csv_text.encode(), "leads.csv", import_id=f"import-{n}")
    assert report.import_id == f"import-{n}"
    progress = import_progress(capture, f"import-{n}")
    assert (progress.state, progress.phase, progress.rows_expected, progress.rows_read, progress.rows_stored,
            progress.rows_rejected, progress.bytes_received) == \
        (common_pb2.IMPORT_STATE_DONE, common_pb2.IMPORT_PHASE_FINISHED, 2, 2, 1, 1, len(csv_text))
    assert progress.started_by and progress.started_at.seconds <= progress.updated_at.seconds

    # Without an id the service makes one, and the report names it.
    made = import_file(capture, csv_text.encode(), "leads.csv")
    assert import_progress(capture, made.import_id).state == common_pb2.IMPORT_STATE_DONE

    # A file refused as a whole is recorded as failed, with the answer the caller got.
    refused = capture.api.error("ImportLeadFile", iter([
        capture_pb2.ImportLeadFileRequest(header=capture_pb2.ImportHeader(
            filename="leads.xlsx", attribution=common_pb2.Attribution(source="x"), import_id=f"broken-{n}")),
        capture_pb2.ImportLeadFileRequest(chunk=b"not a workbook")]))
    failed = import_progress(capture, f"broken-{n}")
    assert (failed.state, failed.message) == (common_pb2.IMPORT_STATE_FAILED, refused.message)

    bad_id = capture.api.error("ImportLeadFile", iter([
        capture_pb2.ImportLeadFileRequest(header=capture_pb2.ImportHeader(
            filename="leads.csv", attribution=common_pb2.Attribution(source="x"), import_id="a b"))]))
    assert list(violations_of(bad_id.status)) == ["header.import_id"]
    unknown = capture.api.error("GetImportProgress", capture_pb2.GetImportProgressRequest(import_id=f"never-{n}"))
    assert unknown.code == StatusCode.NOT_FOUND
    missing = capture.api.error("GetImportProgress", capture_pb2.GetImportProgressRequest())
    assert list(violations_of(missing.status)) == ["import_id"]


def test_xlsx_import_with_a_saved_mapping_per_source(capture):
    n = unique()
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["Kontakt", "Mail", "Firma", "Mitarbeiter"])
    sheet.append([f"Jonas Weber{n}", f"jonas.{n}@bosch-{n}.de", "Bosch", 1200])
    buffer = io.BytesIO()
    workbook.save(buffer)
    mapping = {"Kontakt": "full_name", "Mail": "email", "Firma": "company", "Mitarbeiter": "company_size"}

    first = import_file(capture, buffer.getvalue(), "messe.xlsx", mapping=mapping, save_mapping=True,
                        attribution=common_pb2.Attribution(source=f"messe-{n}"))
    assert (first.accepted, first.rejected) == (1, 0)
    lead = LeadDocument.objects.get(email=f"jonas.{n}@bosch-{n}.de")
    assert (lead.last_name, lead.company_size) == (f"Weber{n}", 1200)

    sheet.append([f"Mia Kurz{n}", f"mia.{n}@bosch-{n}.de", "Bosch", 1200])
    buffer = io.BytesIO()
    workbook.save(buffer)
    second = import_file(capture, buffer.getvalue(), "messe.xlsx",
                         attribution=common_pb2.Attribution(source=f"messe-{n}"))
    assert dict(second.mapping) == mapping
    assert (second.accepted, second.unchanged) == (1, 1)


def test_import_refuses_a_bad_mapping_and_an_unreadable_file_by_name(capture):
    error = capture.api.error("ImportLeadFile", iter([
        capture_pb2.ImportLeadFileRequest(header=capture_pb2.ImportHeader(
            filename="a.csv", mapping={"Nope": "email"}, attribution=common_pb2.Attribution(source="x"))),
        capture_pb2.ImportLeadFileRequest(chunk=b"Email\nx@y.com\n")]))
    assert error.code == StatusCode.INVALID_ARGUMENT and set(violations_of(error.status)) == {"header.mapping[Nope]"}
    error = capture.api.error("ImportLeadFile", iter([
        capture_pb2.ImportLeadFileRequest(header=capture_pb2.ImportHeader(filename="a.csv"))]))
    assert set(violations_of(error.status)) == {"header.attribution.source"}


@pytest.mark.needs_shared_data
@pytest.mark.timeout(300)  # two imports of the whole 7,392-row export; a slow CI machine needs over a minute
def test_xeducation_export_imports_every_identified_row_once(capture, shared_data):
    content = (shared_data / "xeducation-leads" / "train.csv").read_bytes()
    prefix = f"xeducation-{unique()}:"
    report = import_file(capture, content, "train.csv", external_id_prefix=prefix,
                         attribution=common_pb2.Attribution(source="xeducation"))
    assert report.rows == 7392 and report.accepted + report.merged + report.rejected == 7392
    # The export's only unusable value: a region where a country belongs ("unknown" counts as empty).
    assert {(r.column, "Asia/Pacific Region" in r.reason) for r in report.rejected_rows} == {("Country", True)}
    assert report.rejected < 10 and report.merged == 0
    assert report.mapping["Prospect ID"] == "external_id" and report.mapping["Lead Source"] == "source"
    sources = set(LeadDocument.objects(external_id__startswith=prefix).distinct("source"))
    assert "google" in sources and "Google" not in sources and "select" not in sources
    india = LeadDocument.objects(external_id__startswith=prefix, country="IN").count()
    assert india > 5000
    again = import_file(capture, content, "train.csv", external_id_prefix=prefix,
                        attribution=common_pb2.Attribution(source="xeducation"))
    assert (again.accepted, again.unchanged) == (0, report.accepted)
    outbox = LeadDocument._get_db()["outbox"]
    assert wait_until(lambda: outbox.count_documents({}) == 0, timeout=180), "every lead_captured was published"


# ---- de-duplication, merge and unmerge -------------------------------------------------------------

def test_close_name_and_company_merge_and_a_weaker_match_is_flagged(capture):
    n = unique()
    first = capture.api.SubmitLead(capture_pb2.SubmitLeadRequest(lead=lead_input(
        email=f"anna.{n}@umbrella-{n}.com", first_name="Anna", last_name=f"Schmidt{n}",
        company=f"Umbrella{n} GmbH"))).lead
    # A business card without the email: same person, same company.
    card = capture.api.SubmitLead(capture_pb2.SubmitLeadRequest(lead=lead_input(
        email="", phone=f"+49 30 {n}", first_name="anna", last_name=f"schmidt{n}", company=f"UMBRELLA{n}",
        attribution=common_pb2.Attribution(source="business_card"))))
    assert card.merged and card.lead.lead_id == first.lead_id
    assert card.lead.phone_e164 == f"+4930{n}" and len(card.lead.touches) == 2

    cousin = capture.api.SubmitLead(capture_pb2.SubmitLeadRequest(lead=lead_input(
        email=f"a.schmitz.{n}@umbrella-{n}.com", first_name="Anne", last_name=f"Schmitz{n}",
        company=f"Umbrella{n}"))).lead
    assert cousin.lead_id != first.lead_id and list(cousin.possible_duplicate_of) == [first.lead_id]
    found = capture.api.SearchLeads(capture_pb2.SearchLeadsRequest(possible_duplicates_only=True, text=f"schmitz{n}"))
    assert [lead.lead_id for lead in found.leads] == [cousin.lead_id]


def test_merge_then_unmerge_restores_both_leads(capture, tap):
    events = tap("capture", "lead_merged", "lead_unmerged")
    primary = capture.api.SubmitLead(capture_pb2.SubmitLeadRequest(lead=lead_input(tags=["vip"]))).lead
    duplicate = capture.api.SubmitLead(capture_pb2.SubmitLeadRequest(lead=lead_input(
        phone=f"+86 139 {unique()}", title="CFO", tags=["event"]))).lead

    merged = capture.api.MergeLeads(capture_pb2.MergeLeadsRequest(
        primary_lead_id=primary.lead_id, duplicate_lead_id=duplicate.lead_id)).lead
    assert merged.lead_id == primary.lead_id and merged.title == "CFO" and merged.phone_e164 == duplicate.phone_e164
    assert set(merged.tags) == {"vip", "event"} and duplicate.email in merged.other_contacts
    again = capture.api.SubmitLead(capture_pb2.SubmitLeadRequest(lead=lead_input(email=duplicate.email)))
    assert again.lead.lead_id == primary.lead_id  # the duplicate's email now finds the primary
    assert capture.api.error("MergeLeads", capture_pb2.MergeLeadsRequest(
        primary_lead_id=primary.lead_id, duplicate_lead_id=duplicate.lead_id)).code == StatusCode.FAILED_PRECONDITION

    restored = capture.api.UnmergeLeads(capture_pb2.UnmergeLeadsRequest(lead_id=duplicate.lead_id))
    assert restored.lead.lead_id == duplicate.lead_id and restored.lead.title == "CFO" and not restored.lead.merged_into
    assert (restored.primary.title, list(restored.primary.tags)) == ("", ["vip"])
    assert restored.primary.phone_e164 == "" and duplicate.email not in restored.primary.other_contacts
    back = capture.api.SubmitLead(capture_pb2.SubmitLeadRequest(lead=lead_input(email=duplicate.email)))
    assert back.lead.lead_id == duplicate.lead_id
    [unmerged] = events.wait_for(lambda e: e["event_type"] == "lead_unmerged")
    assert (unmerged["lead_id"], unmerged["primary"]["lead_id"]) == (duplicate.lead_id, primary.lead_id)
    manual = [e for e in events.of_type("lead_merged") if e.get("merged_lead_id") == duplicate.lead_id]
    assert manual and manual[0]["match"] == "manual"


# ---- search and owners -----------------------------------------------------------------------------

def test_search_by_prefix_tag_source_and_pages(capture):
    n = unique()
    ids = [capture.api.SubmitLead(capture_pb2.SubmitLeadRequest(lead=lead_input(
        first_name="Zhang", last_name=f"Wei{n}", company=f"Sinotrans{n} Logistics", tags=["expo"],
        attribution=common_pb2.Attribution(source="Expo")))).lead.lead_id for _ in range(3)]
    found = capture.api.SearchLeads(capture_pb2.SearchLeadsRequest(
        text=f"sinotrans{n} zha", tag="EXPO", source="expo", page=common_pb2.PageRequest(page_size=2)))
    assert [lead.lead_id for lead in found.leads] == ids[::-1][:2] and found.page.next_page_token
    rest = capture.api.SearchLeads(capture_pb2.SearchLeadsRequest(
        text=f"sinotrans{n}", page=common_pb2.PageRequest(page_size=2, page_token=found.page.next_page_token)))
    assert [lead.lead_id for lead in rest.leads] == [ids[0]] and not rest.page.next_page_token
    assert not capture.api.SearchLeads(capture_pb2.SearchLeadsRequest(text=f"sinotrans{n} zzz")).leads


def test_rep_reads_and_searches_only_the_leads_routed_to_them(capture, tokens, publish):
    lead = capture.api.SubmitLead(capture_pb2.SubmitLeadRequest(lead=lead_input())).lead
    publish("routing", new_event("lead_assigned", {"lead_id": lead.lead_id, "rep_id": "rep.one"}, team="team-a"))
    wait_until(lambda: LeadDocument.objects(id=lead.lead_id, owner_id="rep.one").count())
    rep = capture.grpc(capture_pb2_grpc.CaptureServiceStub, tokens["rep"])
    other = capture.grpc(capture_pb2_grpc.CaptureServiceStub, tokens["other_rep"])

    assert rep.GetLead(capture_pb2.GetLeadRequest(lead_id=lead.lead_id)).lead.owner_id == "rep.one"
    assert other.error("GetLead", capture_pb2.GetLeadRequest(lead_id=lead.lead_id)).code == StatusCode.NOT_FOUND
    mine = rep.SearchLeads(capture_pb2.SearchLeadsRequest(text=lead.email)).leads
    assert [found.lead_id for found in mine] == [lead.lead_id]
    assert not other.SearchLeads(capture_pb2.SearchLeadsRequest(text=lead.email)).leads
    assert other.error("SubmitLead", capture_pb2.SubmitLeadRequest(lead=lead_input())).code == \
        StatusCode.PERMISSION_DENIED


# ---- business cards ----------------------------------------------------------------------------------

@pytest.mark.skipif(not shutil.which("tesseract"), reason="Tesseract OCR is not installed (make test installs it)")
def test_scanned_business_card_becomes_a_lead_and_a_bad_image_is_named(capture, tap):
    from services.devstack.sample_cards import render_card, sample_card
    captured = tap("capture", "lead_captured", "lead_merged")
    card = sample_card("anna-schmidt")
    read = capture.api.ScanBusinessCard(capture_pb2.ScanBusinessCardRequest(
        image=render_card(card, fmt="JPEG"), read_only=True))
    assert {(f.name, f.value) for f in read.fields} >= {("email", card.email), ("company", card.company)}
    assert not read.HasField("lead") and captured.settle(0.3) == []

    scanned = capture.api.ScanBusinessCard(capture_pb2.ScanBusinessCardRequest(
        image=render_card(card, layout="centered"), tags=["Expo 2026"], default_region="DE",
        attribution=common_pb2.Attribution(campaign="Hannover Messe")))
    lead = scanned.lead
    assert (lead.email, lead.phone_e164, lead.first_name, lead.last_name) == \
        (card.email, card.phone_e164, "Anna", "Schmidt")
    assert (lead.attribution.source, lead.attribution.campaign, list(lead.tags)) == \
        ("business_card", "hannover messe", ["channel:business-card", "expo 2026"])
    assert scanned.created or scanned.merged
    assert captured.wait_for(lambda e: e["lead_id"] == lead.lead_id)

    for image in (b"GIF89a not a card", b""):
        error = capture.api.error("ScanBusinessCard", capture_pb2.ScanBusinessCardRequest(image=image))
        assert error.code == StatusCode.INVALID_ARGUMENT and set(violations_of(error.status)) == {"image"}


# ---- what the record must never do -------------------------------------------------------------------

def test_unmerge_takes_back_consent_the_duplicate_brought_and_refuses_a_chained_merge(capture):
    primary = capture.api.SubmitLead(capture_pb2.SubmitLeadRequest(lead=lead_input())).lead
    consenting = capture.api.SubmitLead(capture_pb2.SubmitLeadRequest(lead=lead_input(
        marketing_consent=True, consent_text="Yes, email me."))).lead
    third = capture.api.SubmitLead(capture_pb2.SubmitLeadRequest(lead=lead_input())).lead

    merged = capture.api.MergeLeads(capture_pb2.MergeLeadsRequest(
        primary_lead_id=primary.lead_id, duplicate_lead_id=consenting.lead_id)).lead
    assert merged.consent.marketing and merged.consent.text == "Yes, email me."
    capture.api.MergeLeads(capture_pb2.MergeLeadsRequest(
        primary_lead_id=third.lead_id, duplicate_lead_id=primary.lead_id))
    # The consenting lead's keys now live on `third`: undo the later merge first.
    error = capture.api.error("UnmergeLeads", capture_pb2.UnmergeLeadsRequest(lead_id=consenting.lead_id))
    assert error.code == StatusCode.FAILED_PRECONDITION and primary.lead_id in error.message

    capture.api.UnmergeLeads(capture_pb2.UnmergeLeadsRequest(lead_id=primary.lead_id))
    restored = capture.api.UnmergeLeads(capture_pb2.UnmergeLeadsRequest(lead_id=consenting.lead_id))
    assert not restored.primary.consent.marketing and not restored.primary.HasField("consent")
    assert restored.lead.consent.marketing
    again = capture.api.SubmitLead(capture_pb2.SubmitLeadRequest(lead=lead_input(email=consenting.email)))
    assert again.lead.lead_id == consenting.lead_id


def test_a_public_form_naming_a_known_email_does_not_hand_its_visitor_the_lead(capture, tap):
    """Anyone can type a known person's email into a form; their browser must not become that person."""
    activity = tap("capture", "lead_activity_recorded")
    victim = capture.api.SubmitLead(capture_pb2.SubmitLeadRequest(lead=lead_input())).lead
    form = put_form(capture)
    attacker = f"atk-{unique()}"
    status, _, _ = http("POST", f"{capture.base}/f/{form.public_key}", json.dumps(
        {"email": victim.email, "visitor_id": attacker}).encode(), {"Content-Type": "application/json"})
    assert status == 201
    http("POST", f"{capture.base}/t", json.dumps({"visitor_id": attacker, "type": "demo_request"}).encode(),
         {"Content-Type": "application/json"})
    assert [e for e in activity.settle(0.5) if e["lead_id"] == victim.lead_id] == []


def test_a_visitor_identified_through_record_activity_brings_its_anonymous_history(capture, tap):
    activity = tap("capture", "lead_activity_recorded")
    lead = capture.api.SubmitLead(capture_pb2.SubmitLeadRequest(lead=lead_input())).lead
    visitor = f"v-{unique()}"
    http("POST", f"{capture.base}/t", json.dumps({"visitor_id": visitor, "type": "pricing_page_view",
                                                  "url": "https://x.example/pricing"}).encode(),
         {"Content-Type": "application/json"})
    capture.api.RecordActivity(capture_pb2.RecordActivityRequest(
        lead_id=lead.lead_id, visitor_id=visitor, type=capture_pb2.ACTIVITY_TYPE_EMAIL_CLICK,
        url="https://x.example/offer"))
    stitched = activity.wait_for(lambda e: e["lead_id"] == lead.lead_id and e["type"] == "pricing_page_view")
    assert stitched[0]["stitched"]


def test_managers_see_their_teams_leads_and_not_yet_routed_ones(capture, tokens, publish):
    ours = capture.api.SubmitLead(capture_pb2.SubmitLeadRequest(lead=lead_input())).lead
    theirs = capture.api.SubmitLead(capture_pb2.SubmitLeadRequest(lead=lead_input())).lead
    unrouted = capture.api.SubmitLead(capture_pb2.SubmitLeadRequest(lead=lead_input())).lead
    publish("routing", new_event("lead_assigned", {"lead_id": ours.lead_id, "rep_id": "rep.one"}, team="team-a"))
    publish("routing", new_event("lead_assigned", {"lead_id": theirs.lead_id, "rep_id": "rep.far"}, team="team-b"))
    wait_until(lambda: LeadDocument.objects(id=theirs.lead_id, owner_team="team-b").count())
    wait_until(lambda: LeadDocument.objects(id=ours.lead_id, owner_team="team-a").count())
    manager = capture.grpc(capture_pb2_grpc.CaptureServiceStub, tokens["manager"])  # team-a

    assert manager.GetLead(capture_pb2.GetLeadRequest(lead_id=ours.lead_id)).lead.owner_id == "rep.one"
    assert manager.GetLead(capture_pb2.GetLeadRequest(lead_id=unrouted.lead_id)).lead.lead_id == unrouted.lead_id
    assert manager.error("GetLead", capture_pb2.GetLeadRequest(lead_id=theirs.lead_id)).code == StatusCode.NOT_FOUND
    assert not manager.SearchLeads(capture_pb2.SearchLeadsRequest(text=theirs.email)).leads
    assert manager.error("MergeLeads", capture_pb2.MergeLeadsRequest(
        primary_lead_id=ours.lead_id, duplicate_lead_id=theirs.lead_id)).code == StatusCode.NOT_FOUND


def test_bad_times_and_oversized_qr_parameters_are_named_not_internal_errors(capture):
    form = put_form(capture)
    status, _, body = http("GET", f"{capture.base}/f/{form.public_key}/qr.png?source=" + "x" * 1100)
    assert status == 422 and json.loads(body)["violations"][0]["field"] == "source"
    from google.protobuf.timestamp_pb2 import Timestamp
    error = capture.api.error("SearchLeads", capture_pb2.SearchLeadsRequest(
        captured_from=Timestamp(seconds=10 ** 12)))
    assert error.code == StatusCode.INVALID_ARGUMENT and set(violations_of(error.status)) == {"captured_from"}
