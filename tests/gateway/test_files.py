"""Files through the gateway: lead imports, sales history and attachments as multipart uploads,
attachments back as downloads — each checked against what the services stored."""
import os
import uuid

import pytest
from urllib3 import encode_multipart_formdata

pytestmark = pytest.mark.e2e

LEADS_CSV = ("Email,First name,Last name,Company,Job title\n"
             "{b}-1@{b}.example.com,Mei,Lin,{b} Robotics,CTO\n"
             "{b}-2@{b}.example.com,Tao,Wu,{b} Robotics,Buyer\n"
             "not-an-email,Bad,Row,{b} Robotics,CEO\n")
HISTORY_CSV = ("opportunity_id,sales_agent,product,account,deal_stage,engage_date,close_date,close_value\n"
               "{b}-1,Moses Frase,GTX Pro,{b} Works,Won,2026-01-05,2026-02-10,1200\n"
               "{b}-2,Moses Frase,GTX Pro,{b} Works,Engaging,2026-03-01,,\n")


def multipart(parts: list) -> tuple[bytes, dict]:
    body, content_type = encode_multipart_formdata(parts)
    return body, {"Content-Type": content_type}


def header_part(header: dict) -> tuple:
    import json
    return "header", ("header.json", json.dumps(header).encode(), "application/json")


def upload(console, method: str, parts: list):
    body, headers = multipart(parts)
    return console.post(f"/api/v1/{method}", raw=body, headers=headers)


def search(console, text: str) -> list:
    return console.post("/api/v1/capture/SearchLeads", {"text": text, "page": {"page_size": 50}})[1]["leads"]


def test_a_spreadsheet_uploaded_as_multipart_is_imported_with_its_rejected_row_named(console):
    batch = f"gwf{uuid.uuid4().hex[:8]}"
    status, report, _ = upload(console, "capture/ImportLeadFile", [
        header_part({"attribution": {"source": "trade_fair", "campaign": batch}, "tags": [batch],
                     "import_id": f"upload-{batch}"}),
        ("file", (f"{batch}.csv", LEADS_CSV.format(b=batch).encode(), "text/csv"))])
    assert status == 200, report
    assert (report["rows"], report["accepted"], report["rejected"]) == (3, 2, 1)
    assert report["rejected_rows"][0]["row"] == 4
    # The console's progress bar asks for the import by the id it chose.
    status, answer, _ = console.post("/api/v1/capture/GetImportProgress", {"import_id": f"upload-{batch}"})
    assert status == 200, answer
    progress = answer["progress"]
    assert (progress["state"], progress["rows_read"], progress["rows_stored"], progress["rows_rejected"]) == \
        ("IMPORT_STATE_DONE", "3", "2", "1")
    assert {lead["email"] for lead in search(console, batch)} == {f"{batch}-1@{batch}.example.com",
                                                                 f"{batch}-2@{batch}.example.com"}


@pytest.mark.parametrize("parts, field", [
    (lambda b: [("file", ("x.csv", b"Email\na@b.example.com\n", "text/csv"))], "header"),
    (lambda b: [header_part({"attribution": {"source": "fair", "campaign": b}, "colour": "red"}),
                ("file", ("x.csv", b"Email\na@b.example.com\n", "text/csv"))], "header.colour"),
    (lambda b: [header_part({"attribution": {"source": "fair", "campaign": b}})], "file"),
])
def test_a_bad_upload_is_400_naming_the_part_and_imports_nothing(console, parts, field):
    batch = f"gwf{uuid.uuid4().hex[:8]}"
    status, body, _ = upload(console, "capture/ImportLeadFile", parts(batch))
    assert status == 400, body
    assert [v["field"] for v in body["error"]["field_violations"]] == [field]
    assert search(console, batch) == []


def test_a_body_cut_short_aborts_the_import_instead_of_importing_part_of_it(console):
    batch = f"gwf{uuid.uuid4().hex[:8]}"
    body, headers = multipart([
        header_part({"attribution": {"source": "fair", "campaign": batch}}),
        ("file", ("x.csv", LEADS_CSV.format(b=batch).encode(), "text/csv"))])
    status, answer, _ = console.post("/api/v1/capture/ImportLeadFile", raw=body[:-30], headers=headers)
    assert status == 400, answer
    assert answer["error"]["field_violations"][0]["field"] == "body"
    assert search(console, batch) == []


def test_an_upload_must_be_multipart(console):
    status, body, _ = console.post("/api/v1/capture/ImportLeadFile", {"header": {}})
    assert status == 400
    assert body["error"]["field_violations"][0]["field"] == "body"


def test_a_service_refusal_of_an_upload_keeps_its_field_violations(console):
    # No source anywhere: capture refuses the import itself, naming the header field.
    status, body, _ = upload(console, "capture/ImportLeadFile", [
        header_part({}), ("file", ("x.csv", b"Email\nz@z.example.com\n", "text/csv"))])
    assert status == 400, body
    assert any(v["field"].startswith("header.attribution") for v in body["error"]["field_violations"])


def test_sales_history_files_named_by_table_then_an_attachment_round_trip(console):
    batch = f"gwh{uuid.uuid4().hex[:8]}"
    status, report, _ = upload(console, "opportunity/ImportOpportunities", [
        header_part({"currency": "USD", "external_id_prefix": f"{batch}:", "stage_map": {"Engaging": "discovery"}}),
        ("opportunities", (f"{batch}.csv", HISTORY_CSV.format(b=batch).encode(), "text/csv"))])
    assert status == 200, report
    assert (report["rows"], report["imported"], report["rejected"]) == (2, 2, 0)
    status, listed, _ = console.post("/api/v1/opportunity/ListOpportunities",
                                     {"owner_id": "moses.frase", "page": {"page_size": 100}})
    assert status == 200, listed
    [deal] = [o for o in listed["opportunities"] if o["account_name"] == f"{batch} Works" and o["status"] ==
              "OPPORTUNITY_STATUS_OPEN"]

    # 3 MiB: many network reads and several gRPC chunks each way.
    proposal = b"%PDF-1.4\n" + os.urandom(3 * 1024 * 1024) + b"\n%%EOF\n"
    status, stored, _ = upload(console, "opportunity/UploadAttachment", [
        header_part({"opportunity_id": deal["opportunity_id"]}),  # name and type come from the file part
        ("file", ("报价 proposal.pdf", proposal, "application/pdf"))])
    assert status == 200, stored
    attachment = stored["attachment"]
    assert (attachment["filename"], int(attachment["size"])) == ("报价 proposal.pdf", len(proposal))

    status, content, headers = console.post("/api/v1/opportunity/DownloadAttachment",
                                            {"attachment_id": attachment["attachment_id"]})
    assert status == 200
    assert headers["content-type"] == "application/pdf"
    assert "filename*=UTF-8''%E6%8A%A5%E4%BB%B7%20proposal.pdf" in headers["content-disposition"]
    assert content == proposal

    status, body, _ = console.post("/api/v1/opportunity/DownloadAttachment", {"attachment_id": "att-nope"})
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
    # Files are named after their table; anything else is refused before the service is called.
    status, body, _ = upload(console, "opportunity/ImportOpportunities", [
        header_part({"currency": "USD"}), ("deals", ("d.csv", b"opportunity_id\n1\n", "text/csv"))])
    assert status == 400
    assert "opportunities" in body["error"]["field_violations"][0]["description"]
