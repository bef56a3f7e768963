"""Multipart uploads turned into the RPCs' request streams (pure: bytes in, messages out)."""
import json

import pytest
from urllib3 import encode_multipart_formdata

from services.gateway.app import catalogue
from services.gateway.transcoding import RequestBodyError
from services.gateway.uploads import MultipartStream, UploadMessages, boundary_of

_, UPLOADS, DOWNLOADS = catalogue()


def stream_of(method: tuple, parts: list, piece: int = 7) -> list:
    """The messages an upload becomes, fed to the parser in small pieces as a socket would."""
    body, content_type = encode_multipart_formdata(parts)
    rpc, shape = UPLOADS[method]
    parser, messages, out = MultipartStream(boundary_of(content_type)), UploadMessages(rpc, shape), []
    for start in range(0, len(body), piece):
        parser.feed(body[start:start + piece])
        for kind, value in parser.events():
            out += messages.on_event(kind, value)
    parser.close()
    for kind, value in parser.events():
        out += messages.on_event(kind, value)
    messages.finish()
    return out


def header(body: dict) -> tuple:
    return "header", ("h.json", json.dumps(body).encode(), "application/json")


def test_the_three_file_rpcs_are_uploads_and_attachments_download():
    assert set(UPLOADS) == {("capture", "ImportLeadFile"), ("opportunity", "UploadAttachment"),
                            ("opportunity", "ImportOpportunities")}
    assert set(DOWNLOADS) == {("opportunity", "DownloadAttachment")}


def test_a_file_becomes_the_header_then_its_bytes_in_order():
    content = b"Email,Company\n" + b"".join(b"a%d@x.example.com,X\n" % i for i in range(500))
    messages = stream_of(("capture", "ImportLeadFile"), [
        header({"attribution": {"source": "fair"}}), ("file", ("leads.csv", content, "text/csv"))])
    assert messages[0].WhichOneof("part") == "header"
    assert messages[0].header.attribution.source == "fair"
    assert messages[0].header.filename == "leads.csv"  # taken from the file part
    assert b"".join(m.chunk for m in messages[1:]) == content


def test_an_attachment_takes_its_name_and_type_from_the_file_part_unless_the_header_says():
    [first, *_] = stream_of(("opportunity", "UploadAttachment"), [
        header({"opportunity_id": "opp-1"}), ("file", ("offer.pdf", b"%PDF-1.4", "application/pdf"))])
    assert (first.header.filename, first.header.content_type) == ("offer.pdf", "application/pdf")
    [first, *_] = stream_of(("opportunity", "UploadAttachment"), [
        header({"opportunity_id": "opp-1", "filename": "Angebot.pdf"}),
        ("file", ("x.pdf", b"%PDF", "application/pdf"))])
    assert first.header.filename == "Angebot.pdf"


def test_history_files_start_with_their_table_named_by_the_part():
    messages = stream_of(("opportunity", "ImportOpportunities"), [
        header({"currency": "USD"}), ("opportunities", ("deals.csv", b"id\n1\n", "text/csv")),
        ("accounts", ("accounts.xlsx", b"PK..", "application/octet-stream"))])
    kinds = [m.WhichOneof("part") for m in messages]
    assert kinds == ["header", "file", "chunk", "file", "chunk"]
    assert (messages[1].file.table, messages[1].file.filename) == (1, "deals.csv")
    assert (messages[3].file.table, messages[3].file.filename) == (2, "accounts.xlsx")


@pytest.mark.parametrize("method, parts, field", [
    (("capture", "ImportLeadFile"), [("file", ("x.csv", b"a", "text/csv"))], "header"),
    (("capture", "ImportLeadFile"), [header({"tags": "not a list"}), ("file", ("x.csv", b"a", "text/csv"))],
     "header.tags"),
    (("capture", "ImportLeadFile"), [header({})], "file"),
    (("capture", "ImportLeadFile"), [header({}), ("file", ("a.csv", b"a", "text/csv")),
                                     ("file", ("b.csv", b"b", "text/csv"))], "file"),
    (("opportunity", "ImportOpportunities"), [header({}), ("deals", ("d.csv", b"a", "text/csv"))], "file[1]"),
])
def test_a_bad_upload_names_the_part(method, parts, field):
    with pytest.raises(RequestBodyError) as raised:
        stream_of(method, parts)
    assert raised.value.violation.field == field


def test_a_body_that_is_not_multipart_or_is_cut_short_is_refused():
    with pytest.raises(RequestBodyError):
        boundary_of("application/json")
    body, content_type = encode_multipart_formdata([header({}), ("file", ("a.csv", b"abc", "text/csv"))])
    parser = MultipartStream(boundary_of(content_type))
    parser.feed(body[:-10])
    with pytest.raises(RequestBodyError):
        parser.close()
