"""The HTTP/JSON API as a frontend uses it: auth, roles, errors with their fields, paging, limits."""
import http.client
import json
import uuid

import pytest
from schemathesis.openapi import from_dict

pytestmark = pytest.mark.e2e


def new_lead(batch: str, index: int = 0, **overrides) -> dict:
    lead = {"email": f"gw{index}@{batch}.example.com", "first_name": "Gao", "last_name": f"Wei{index}",
            "company": f"{batch} Ltd", "title": "CTO", "company_size": 800, "industry": "software",
            "attribution": {"source": "referral", "campaign": batch}}
    return {"lead": {**lead, **overrides}, "idempotency_key": f"{batch}-{index}"}


def leads_of(console, batch: str) -> list[dict]:
    status, body, _ = console.post("/api/v1/capture/SearchLeads", {"text": batch, "page": {"page_size": 100}})
    assert status == 200, body
    return body["leads"]


def test_a_lead_submitted_over_http_reads_back_in_snake_case_with_enums_by_name(console):
    batch = f"gw{uuid.uuid4().hex[:8]}"
    status, created, headers = console.post("/api/v1/capture/SubmitLead", new_lead(batch))
    assert status == 200, created
    assert created["created"] is True
    lead_id = created["lead"]["lead_id"]
    assert headers.get("x-trace-id")

    status, read, _ = console.post("/api/v1/capture/GetLead", {"lead_id": lead_id}, who="manager")
    assert status == 200, read
    assert read["lead"]["email"] == f"gw0@{batch}.example.com"
    assert read["lead"]["company_size"] == 800
    assert read["lead"]["attribution"]["campaign"] == batch
    # Scalars at their default are printed too: a frontend never guesses proto3's absent-means-zero.
    assert "needs_review" in read["lead"]


def test_missing_or_unknown_token_is_401_without_reaching_a_service(console):
    status, body, _ = console.post("/api/v1/capture/SearchLeads", {}, who=None)
    assert status == 401
    assert body["error"]["code"] == "UNAUTHENTICATED"
    status, body, _ = console.post("/api/v1/capture/SearchLeads", {}, who=None,
                                   headers={"Authorization": "Bearer not-a-token"})
    assert status == 401
    assert "unknown" in body["error"]["message"]


def test_me_says_who_the_token_belongs_to(console):
    status, body, _ = console.get("/api/v1/me", who="rep")
    assert (status, body) == (200, {"id": "rep.one", "role": "rep", "team": "team-a"})
    status, body, _ = console.get("/api/v1/me")
    assert status == 401


def test_the_services_role_rules_apply_through_the_gateway(console):
    status, body, _ = console.post("/api/v1/routing/PutTeam", {"team": {"team_id": "x", "name": "X"}}, who="rep")
    assert status == 403
    assert body["error"]["code"] == "PERMISSION_DENIED"
    assert "rep.one" in body["error"]["message"]


def test_an_invalid_lead_is_400_naming_the_field_and_stores_nothing(console):
    batch = f"gw{uuid.uuid4().hex[:8]}"
    status, body, _ = console.post("/api/v1/capture/SubmitLead", new_lead(batch, email="not-an-email", phone=""))
    assert status == 400, body
    assert body["error"]["code"] == "INVALID_ARGUMENT"
    assert "lead.email" in [v["field"] for v in body["error"]["field_violations"]]
    assert leads_of(console, batch) == []


@pytest.mark.parametrize("lead_patch, field", [
    ({"company_size": "eight hundred"}, "lead.company_size"),
    ({"emial": "typo@example.com"}, "lead.emial"),
    ({"attribution": {"source": 5}}, "lead.attribution.source"),
])
def test_a_body_that_does_not_fit_the_message_names_the_field(console, lead_patch, field):
    batch = f"gw{uuid.uuid4().hex[:8]}"
    status, body, _ = console.post("/api/v1/capture/SubmitLead", new_lead(batch, **lead_patch))
    assert status == 400, body
    assert [v["field"] for v in body["error"]["field_violations"]] == [field]
    assert leads_of(console, batch) == []


def test_not_json_is_400_and_a_huge_body_is_413(console):
    status, body, _ = console.post("/api/v1/capture/SubmitLead", raw=b"{lead:")
    assert status == 400
    assert body["error"]["field_violations"][0]["field"] == "body"
    # A body announced as too large is refused before it is read (the client need not send it).
    host, port = console.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest("POST", "/api/v1/capture/SubmitLead")
    connection.putheader("Authorization", f"Bearer {console.tokens['admin']}")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(2_000_000))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["error"]["http_status"] == 413
    connection.close()


def test_unknown_rpcs_are_404(console):
    for path in ("/api/v1/capture/NoSuchThing", "/api/v1/nowhere/GetLead"):
        status, body, _ = console.post(path, {})
        assert status == 404, path
        assert "openapi.json" in body["error"]["message"]


def test_not_found_maps_to_404(console):
    status, body, _ = console.post("/api/v1/capture/GetLead", {"lead_id": "lead-does-not-exist"})
    assert status == 404
    assert body["error"]["code"] == "NOT_FOUND"


def test_paging_tokens_pass_through(console):
    batch = f"gw{uuid.uuid4().hex[:8]}"
    for index in range(5):
        assert console.post("/api/v1/capture/SubmitLead", new_lead(batch, index))[0] == 200
    seen, token, pages = [], "", 0
    while True:
        status, body, _ = console.post("/api/v1/capture/SearchLeads",
                                       {"text": batch, "page": {"page_size": 2, "page_token": token}})
        assert status == 200, body
        seen += [lead["lead_id"] for lead in body["leads"]]
        pages += 1
        token = body["page"]["next_page_token"]
        if not token:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 5


def test_openapi_document_describes_every_unary_rpc_from_the_contracts(console):
    status, document, _ = console.get("/openapi.json")
    assert status == 200
    schema = from_dict(document)  # schemathesis validates the document as OpenAPI 3.1 on load
    operations = {operation.ok().label for operation in schema.get_all_operations()}
    assert "POST /api/v1/capture/SubmitLead" in operations
    assert "POST /api/v1/opportunity/MoveOpportunityStage" in operations
    assert "POST /api/v1/capture/ImportLeadFile" in operations  # a multipart upload
    assert "POST /api/v1/opportunity/DownloadAttachment" in operations  # a file download
    assert len(operations) == 78  # 73 unary RPCs, 3 uploads, 1 download and /me
    upload = document["paths"]["/api/v1/capture/ImportLeadFile"]["post"]["requestBody"]["content"]
    assert upload["multipart/form-data"]["schema"]["required"] == ["header", "file"]
    submit = document["paths"]["/api/v1/capture/SubmitLead"]["post"]
    assert "lead" in submit["description"].lower()  # the contract's own comment
    lead = document["components"]["schemas"]["leadflow.capture.v1.LeadInput"]["properties"]
    assert lead["company_size"]["type"] == "integer"


def test_health_metrics_and_security_headers(console):
    assert console.get("/readyz")[0] == 200
    console.post("/api/v1/capture/SearchLeads", {})
    status, text, _ = console.get("/metrics")
    assert 'leadflow_gateway_requests_total{operation="capture.SearchLeads",status="200"}' in text
    status, page, headers = console.get("/")
    assert status == 200
    assert "<div id=\"app\"" in page or "id=\"app\"" in page
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
