"""services.opportunity.attachments: accepted types, declared and confirmed by the bytes."""
import io

import pytest
from openpyxl import Workbook

from services.common.errors import InvalidArgument
from services.opportunity.attachments import check_content, validate_header

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def workbook() -> bytes:
    buffer = io.BytesIO()
    Workbook().save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("declared, content", [
    ("application/pdf", b"%PDF-1.7\n..."),
    ("image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 32),
    (XLSX, workbook()),
    ("text/csv", "name,city\nLi Na,上海\n".encode()),
    ("text/plain", "ends in the middle of 上".encode()[:-1]),  # a sample may cut a character
])
def test_content_that_is_what_it_says_passes(declared, content):
    check_content(declared, content[:8192])


@pytest.mark.parametrize("declared, content, found", [
    ("application/pdf", b"\x89PNG\r\n\x1a\n" + b"\x00" * 32, "image/png"),
    ("image/jpeg", b"just text", "not a recognised format"),
    ("text/plain", b"MZ\x90\x00\x03\x00\x00\x00", "UTF-8"),
])
def test_content_that_is_not_what_it_says_is_refused(declared, content, found):
    with pytest.raises(InvalidArgument) as raised:
        check_content(declared, content)
    assert [v.field for v in raised.value.violations] == ["file"] and found in str(raised.value)


def test_header_names_each_problem():
    assert validate_header(" offer.PDF ", "Application/PDF") == ("offer.PDF", "application/pdf")
    with pytest.raises(InvalidArgument) as raised:
        validate_header("docs/offer.pdf", "application/zip")
    assert {v.field for v in raised.value.violations} == {"header.filename", "header.content_type"}
