"""services.capture.cards: a photo of a business card becomes a lead.

The cards are rendered with Pillow (services.devstack.sample_cards) and read by the real Tesseract; nothing
is mocked. Tests that need OCR are skipped, saying why, where tesseract or its chi_sim data is missing.
"""
import io
import shutil
import struct
import time
import zlib
from datetime import datetime, timezone

import pytesseract
import pytest
from PIL import Image, ImageOps

from services.capture.cards import (
    MAX_CARD_BYTES,
    MAX_CARD_PIXELS,
    REVIEW_CONFIDENCE,
    CardScan,
    ExtractedField,
    parse_card_text,
    scan_card,
    split_name,
    validate_card_image,
)
from services.capture.domain import LeadInput, normalise_lead
from services.common.errors import InvalidArgument
from services.devstack.sample_cards import LAYOUTS, SAMPLE_CARDS, render_card, sample_card


def _ocr_missing() -> str:
    if shutil.which(pytesseract.pytesseract.tesseract_cmd) is None:
        return "the tesseract binary is not installed (apt-get install tesseract-ocr)"
    try:
        languages = set(pytesseract.get_languages())
    except Exception as exc:  # noqa: BLE001 — any failure to run it is a reason to skip, told as is
        return f"tesseract does not run: {exc}"
    missing = sorted({"chi_sim", "eng"} - languages)
    if missing:
        return f"tesseract has no {'/'.join(missing)} language data (apt-get install tesseract-ocr-chi-sim)"
    return ""


OCR_MISSING = _ocr_missing()
needs_ocr = pytest.mark.skipif(bool(OCR_MISSING), reason=OCR_MISSING)

_SECONDS: list[float] = []
_SCANS: dict = {}


def scan(card, layout="left", **render) -> CardScan:
    """One real OCR run per distinct rendering, shared by the tests that look at it."""
    key = (card.key, layout, tuple(sorted(render.items())))
    if key not in _SCANS:
        data = render_card(card, layout, **render)
        started = time.perf_counter()
        _SCANS[key] = scan_card(data)
        _SECONDS.append(time.perf_counter() - started)
    return _SCANS[key]


@pytest.fixture(scope="module", autouse=True)
def report_scan_time(request):
    """How long a scan takes, on the terminal even with -q: the capture service's budget depends on it."""
    yield
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if _SECONDS and capture:
        with capture.global_and_fixture_disabled():
            print(f"\nbusiness cards: {len(_SECONDS)} scans, {sum(_SECONDS) / len(_SECONDS):.2f} s per scan on "
                  f"average (slowest {max(_SECONDS):.2f} s)")


def all_confidences(result: CardScan) -> list[float]:
    return [f.confidence for f in (*result.fields.values(), *result.phones, *result.emails)] + [result.confidence]


# --- reading the sample cards --------------------------------------------------------------------------

@needs_ocr
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("card", SAMPLE_CARDS, ids=lambda c: c.key)
def test_reads_who_the_card_is_for_and_how_to_reach_them(card, layout):
    result = scan(card, layout)

    assert [e.value for e in result.emails] == [card.email]
    assert result.phones[0].value == card.phone_e164
    assert result.value("first_name") == card.first_name
    assert result.value("last_name") == card.last_name
    assert result.value("company") == card.company
    assert result.value("title") == card.title
    assert all(0.0 <= c <= 1.0 for c in all_confidences(result))


@needs_ocr
@pytest.mark.parametrize("card", SAMPLE_CARDS, ids=lambda c: c.key)
def test_reads_the_address_and_website_with_chinese_written_without_spaces(card):
    result = scan(card, "left")

    assert result.value("address") == card.address.replace("\n", ", ")
    assert result.value("website") == card.website.lower()
    if card.language == "zh":
        assert card.name in result.text.splitlines()  # chi_sim's "李 娜" is joined back to 李娜


@needs_ocr
@pytest.mark.parametrize("card", SAMPLE_CARDS, ids=lambda c: c.key)
@pytest.mark.parametrize("layout", ["left", "centered"])
def test_a_clean_card_goes_straight_in_without_review(card, layout):
    result = scan(card, layout)

    assert not result.needs_review
    assert result.confidence >= REVIEW_CONFIDENCE


@needs_ocr
def test_fax_numbers_are_left_out_and_a_mobile_comes_first():
    # 欧阳明's card prints 电话 (landline) first, then 手机 (mobile), then 传真 (fax).
    result = scan(sample_card("ouyang-ming"), "left")
    assert [(p.name, p.value) for p in result.phones] == [("mobile", "+8613923456789"),
                                                          ("landline", "+8675587654321")]

    result = scan(sample_card("michael-chen"), "left")
    assert [p.value for p in result.phones] == ["+14155550132"]  # "Fax: +1 415 555 0199" is not a way to call


@needs_ocr
@pytest.mark.parametrize("key", ["anna-schmidt", "li-na"])
def test_reads_a_jpeg_photo_taken_from_further_away(key):
    card = sample_card(key)
    result = scan(card, "centered", fmt="JPEG", scale=0.8)

    assert result.emails[0].value == card.email
    assert result.phones[0].value == card.phone_e164
    assert (result.value("last_name"), result.value("company")) == (card.last_name, card.company)


@needs_ocr
def test_reads_a_card_lying_on_a_desk_in_a_large_photo():
    card = sample_card("zhang-wei")
    photo = Image.new("RGB", (3200, 2400), (110, 92, 75))
    printed = Image.open(io.BytesIO(render_card(card, "left"))).resize((2100, 1200))
    photo.paste(printed, (550, 600))
    data = io.BytesIO()
    photo.save(data, "JPEG", quality=90)

    result = scan_card(data.getvalue())

    assert (result.value("name"), result.value("company")) == ("张伟", card.company)
    assert result.phones[0].value == card.phone_e164


@needs_ocr
def test_reads_light_text_on_a_dark_card():
    card = sample_card("michael-chen")
    dark = ImageOps.invert(Image.open(io.BytesIO(render_card(card, "left"))).convert("RGB"))
    data = io.BytesIO()
    dark.save(data, "PNG")

    result = scan_card(data.getvalue())

    assert result.emails[0].value == card.email
    assert (result.value("name"), result.value("title")) == (card.name, card.title)


@needs_ocr
@pytest.mark.parametrize("key", ["anna-schmidt", "li-na", "ouyang-ming"])
def test_a_blurred_tiny_photo_is_sent_to_review(key):
    result = scan(sample_card(key), "left", scale=0.25, blur=3)

    assert result.needs_review
    assert result.to_lead_input().needs_review
    assert all(0.0 <= c <= 1.0 for c in all_confidences(result))


# --- the lead a card makes -----------------------------------------------------------------------------

@needs_ocr
def test_a_scanned_card_becomes_a_lead_capture_accepts():
    card = sample_card("li-na")
    lead = scan(card, "left").to_lead_input(tags=("expo-2024",))

    assert (lead.email, lead.phone, lead.first_name, lead.last_name) == (
        "lina@yunfan-tech.cn", "+8613800138000", "娜", "李")
    assert (lead.company, lead.title, lead.country) == ("上海云帆科技有限公司", "销售总监", "CN")
    assert (lead.address, lead.website) == ("上海市浦东新区张江路88号", "www.yunfan-tech.cn")
    assert (lead.source, lead.tags, lead.needs_review) == ("business_card", ["expo-2024"], False)
    assert "李娜" in lead.custom_fields["card.text"]

    normalised = normalise_lead(lead, "L-1", datetime(2024, 5, 1, tzinfo=timezone.utc))
    assert (normalised.email, normalised.phone_e164, normalised.company_domain) == (
        "lina@yunfan-tech.cn", "+8613800138000", "yunfan-tech.cn")


@needs_ocr
def test_a_second_phone_is_kept_in_custom_fields():
    lead = scan(sample_card("ouyang-ming"), "left").to_lead_input()

    assert (lead.phone, lead.custom_fields["card.phone_2"]) == ("+8613923456789", "+8675587654321")
    assert (lead.first_name, lead.last_name) == ("明", "欧阳")


def test_to_lead_input_keeps_extra_contacts_and_at_most_1000_characters_of_text():
    result = CardScan(
        fields={"name": ExtractedField("name", "Anna Schmidt", 0.95),
                "first_name": ExtractedField("first_name", "Anna", 0.95),
                "last_name": ExtractedField("last_name", "Schmidt", 0.95),
                "company": ExtractedField("company", "Nordlicht Logistik GmbH", 0.9)},
        # as a reviewer may have typed them: without +country, in the lead's own format
        phones=[ExtractedField("mobile", "0151 23456789", 0.9), ExtractedField("landline", "040 1234567", 0.9)],
        emails=[ExtractedField("email", "a.schmidt@nordlicht-logistik.de", 0.9),
                ExtractedField("email", "info@nordlicht-logistik.de", 0.9)],
        text="x" * 5000, confidence=0.9)

    lead = result.to_lead_input(source="trade_show", default_region="DE")

    assert isinstance(lead, LeadInput)
    assert (lead.phone, lead.country, lead.source) == ("+4915123456789", "DE", "trade_show")
    assert lead.custom_fields["card.phone_2"] == "+49401234567"
    assert lead.custom_fields["card.email_2"] == "info@nordlicht-logistik.de"
    assert lead.custom_fields["card.text"] == "x" * 1000
    normalise_lead(lead, "L-2", datetime(2024, 5, 1, tzinfo=timezone.utc))  # every custom field is acceptable


# --- field extraction from text (no OCR) ---------------------------------------------------------------

@pytest.mark.parametrize("printed, first, last", [
    ("李娜", "娜", "李"),
    ("欧阳明", "明", "欧阳"),
    ("诸葛亮", "亮", "诸葛"),
    ("司马相如", "相如", "司马"),
    ("欧阳", "阳", "欧"),  # two characters are a surname and a given name, never a compound surname alone
    ("Anna Schmidt", "Anna", "Schmidt"),
    ("Dr. Mary Ann Smith, PhD", "Mary Ann", "Smith"),
    ("Jean-Luc Picard", "Jean-Luc", "Picard"),
])
def test_split_name(printed, first, last):
    assert split_name(printed) == (first, last)


def test_a_typed_chinese_card_with_a_compound_surname_and_a_fax():
    result = parse_card_text("诸葛 亮\n首席执行官\n成都卧龙科技有限公司\n传真 : 028-8765 4322\n电话 : 028-8765 4321\n"
                             "手机 : 139 1234 5678\n邮箱 : zhuge@wolong.cn\n地址 : 四川省成都市武侯区武侯祠大街231号")

    assert (result.value("last_name"), result.value("first_name")) == ("诸葛", "亮")
    assert (result.value("title"), result.value("company")) == ("首席执行官", "成都卧龙科技有限公司")
    assert [p.value for p in result.phones] == ["+8613912345678", "+862887654321"]
    assert result.value("address") == "四川省成都市武侯区武侯祠大街231号"
    assert not result.needs_review


def test_a_typed_english_card_with_a_company_named_like_its_domain():
    result = parse_card_text("BrightPath\nDr. Sarah Ng\nFounder & CEO\nM: +65 9123 4567 | F: +65 6123 4568\n"
                             "sarah@brightpath.io\nbrightpath.io\n1 Raffles Place, #20-01\nSingapore 048616")

    assert (result.value("first_name"), result.value("last_name")) == ("Sarah", "Ng")
    assert (result.value("company"), result.value("title")) == ("BrightPath", "Founder & CEO")
    assert [p.value for p in result.phones] == ["+6591234567"]
    assert result.value("website") == "brightpath.io"
    assert result.value("address") == "1 Raffles Place, #20-01, Singapore 048616"
    assert result.to_lead_input().country == "SG"


def test_a_card_without_email_or_phone_needs_review():
    result = parse_card_text("李娜\n销售总监\n上海云帆科技有限公司")

    assert result.value("name") == "李娜"
    assert result.needs_review


def test_low_confidence_reading_needs_review():
    text = "Anna Schmidt\nHead of Sales\nNordlicht Logistik GmbH\nMobile: +49 151 2345 6789"
    assert not parse_card_text(text, confidence=0.95).needs_review
    assert parse_card_text(text, confidence=0.6).needs_review


# --- which images are read at all ----------------------------------------------------------------------

def image_bytes(fmt: str, size=(400, 240), mode="RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "white").save(out, fmt)
    return out.getvalue()


def rejected(data: bytes, field: str = "image") -> str:
    with pytest.raises(InvalidArgument) as raised:
        validate_card_image(data, field)
    [violation] = raised.value.violations
    assert violation.field == field
    return violation.description


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_accepts_png_and_jpeg(fmt):
    assert validate_card_image(image_bytes(fmt)).size == (400, 240)


@pytest.mark.parametrize("data", [
    pytest.param(image_bytes("GIF"), id="gif"),
    pytest.param(image_bytes("WEBP"), id="webp"),
    pytest.param(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 100, id="png-magic-then-garbage"),
    pytest.param(b"definitely not a picture of a business card", id="text"),
])
def test_rejects_anything_but_a_real_png_or_jpeg(data):
    assert "JPEG or PNG" in rejected(data)


def test_rejects_an_empty_image_naming_the_callers_field():
    assert "empty" in rejected(b"", field="card.image")


def test_rejects_a_truncated_png():
    noisy = Image.effect_noise((600, 400), 60).convert("RGB")  # incompressible, so cutting it loses pixels
    out = io.BytesIO()
    noisy.save(out, "PNG")
    data = out.getvalue()
    assert "damaged or truncated" in rejected(data[: len(data) // 2])


def test_rejects_a_file_over_8_mib_before_decoding_it():
    data = image_bytes("PNG") + b"\x00" * MAX_CARD_BYTES
    assert "at most 4000000 bytes" in rejected(data)


def test_rejects_a_decompression_bomb():
    # 8000 x 6000 white pixels: 48 MP, 190 MB decoded as RGB, under 10 kB as a PNG.
    side = io.BytesIO()
    Image.new("1", (8000, 6000), 1).save(side, "PNG")
    assert len(side.getvalue()) < 64 * 1024 and 8000 * 6000 > MAX_CARD_PIXELS
    assert "at most 40 megapixels" in rejected(side.getvalue())


def test_rejects_a_png_whose_header_claims_ten_billion_pixels():
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(
        b"IEND", b"")
    assert "too many pixels" in rejected(data)


def test_scan_card_refuses_a_gif_before_any_ocr():
    with pytest.raises(InvalidArgument) as raised:
        scan_card(image_bytes("GIF"))
    assert raised.value.violations[0].field == "image"
