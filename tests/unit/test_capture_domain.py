"""services.capture.domain: what a channel sends becomes a clean lead, or the caller learns every
bad field at once."""
from datetime import datetime, timezone

import pytest

from services.capture.domain import (
    MAX_CUSTOM_FIELDS,
    MAX_IDEMPOTENCY_KEY,
    LeadInput,
    normalise_lead,
    validate_idempotency_key,
    website_domain,
)
from services.common.errors import InvalidArgument

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def lead(**fields) -> LeadInput:
    fields.setdefault("source", "web_form")
    if "email" not in fields and "phone" not in fields:
        fields["email"] = "ann@acme.com"
    return LeadInput(**fields)


def normalise(**fields):
    return normalise_lead(lead(**fields), "L-1", NOW)


def violations(**fields) -> dict:
    with pytest.raises(InvalidArgument) as raised:
        normalise(**fields)
    return {v.field: v.description for v in raised.value.violations}


# --- email -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, email, domain", [
    ("ann@acme.com", "ann@acme.com", "acme.com"),
    ("  John.Doe@Example.COM ", "john.doe@example.com", "example.com"),
    ("li.wei@sales.bigcorp.cn", "li.wei@sales.bigcorp.cn", "sales.bigcorp.cn"),
    ("someone@gmail.com", "someone@gmail.com", ""),
    ("Someone@GMAIL.COM", "someone@gmail.com", ""),
    ("x@outlook.com", "x@outlook.com", ""),
    ("x@qq.com", "x@qq.com", ""),
    ("x@proton.me", "x@proton.me", ""),
])
def test_email_is_normalised_and_free_mail_gives_no_company_domain(raw, email, domain):
    result = normalise(email=raw)

    assert result.email == email
    assert result.company_domain == domain


@pytest.mark.parametrize("raw, email", [("José@Example.com", "josé@example.com"),
                                        ("张伟@Example.CN", "张伟@example.cn")])
def test_internationalised_email_is_accepted_and_lower_cased(raw, email):
    assert normalise(email=raw).email == email


@pytest.mark.parametrize("raw", ["not-an-email", "ann@", "@acme.com", "ann@@acme.com", "ann acme@x.com",
                                 "ann@acme"])
def test_invalid_email_is_named_lead_email(raw):
    found = violations(email=raw)

    assert list(found) == ["lead.email"]
    assert found["lead.email"].startswith("is not a valid email address")


def test_overlong_email_is_rejected_by_length():
    found = violations(email="a" * 250 + "@x.io")

    assert found == {"lead.email": "must be at most 254 characters (got 255)"}


@pytest.mark.parametrize("fields", [{"email": "", "phone": ""}, {"email": "   ", "phone": " "}])
def test_email_or_phone_is_required(fields):
    assert violations(**fields) == {"lead.email": "an email, a phone or an external id is required"}


def test_phone_alone_is_enough():
    result = normalise(phone="+14155552671")

    assert (result.email, result.company_domain, result.phone_e164) == ("", "", "+14155552671")


# --- phone -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, country, e164", [
    ("+1 415-555-2671", "", "+14155552671"),
    ("+49 30 901820", "", "+4930901820"),
    ("+86 138 0013 8000", "", "+8613800138000"),
    ("030 901820", "DE", "+4930901820"),
    ("020 7946 0958", "gb", "+442079460958"),
    ("13800138000", " cn ", "+8613800138000"),
    ("+442079460958", "DE", "+442079460958"),  # an explicit country code wins over lead.country
])
def test_phone_is_stored_in_e164(raw, country, e164):
    result = normalise(phone=raw, country=country)

    assert result.phone_e164 == e164
    assert result.country == country.strip().upper()


def test_national_phone_without_a_country_asks_for_one():
    found = violations(phone="030 901820")

    assert list(found) == ["lead.phone"]
    assert "lead.country" in found["lead.phone"]


@pytest.mark.parametrize("raw, country", [("+1 555", ""), ("12", "DE"), ("abc", "DE"), ("+49 0", "")])
def test_invalid_phone_is_named_lead_phone(raw, country):
    assert list(violations(phone=raw, country=country)) == ["lead.phone"]


def test_overlong_phone_is_rejected_by_length():
    assert violations(phone="+1" + "0" * 39) == {"lead.phone": "must be at most 40 characters (got 41)"}


@pytest.mark.parametrize("country", ["XX", "Asia/Pacific Region", "Atlantis", "1"])
def test_unknown_country_is_named_and_quoted(country):
    found = violations(country=country)

    assert list(found) == ["lead.country"]
    assert repr(country) in found["lead.country"]


# --- other fields ------------------------------------------------------------------------------------

def test_text_fields_are_cleaned_and_source_medium_industry_lower_cased():
    result = normalise(first_name="  Ada \t Mary ", last_name=" Lovelace\n", company=" Acme   GmbH ",
                       title=" Head  of Sales ", industry=" SaaS ", source="  Web_Form ", medium=" CPC ",
                       campaign=" Spring  Launch ")

    assert (result.first_name, result.last_name, result.company, result.title) == \
        ("Ada Mary", "Lovelace", "Acme GmbH", "Head of Sales")
    assert (result.industry, result.source, result.medium, result.campaign) == \
        ("saas", "web_form", "cpc", "spring launch")


@pytest.mark.parametrize(("written", "code"), [
    ("de", "DE"), ("DEU", "DE"), ("India", "IN"), ("china", "CN"), ("Russia", "RU"), ("UK", "GB"), ("中国", "CN")])
def test_country_codes_and_english_names_become_alpha_2(written, code):
    assert normalise(country=written).country == code


def test_normalised_lead_keeps_id_time_size_consent_and_custom_fields():
    result = normalise(company_size=250, marketing_consent=True, custom_fields={"crm.id": "0042", "Plan_tier": "B"})

    assert (result.lead_id, result.captured_at) == ("L-1", NOW)
    assert (result.company_size, result.marketing_consent) == (250, True)
    assert result.custom_fields == {"crm.id": "0042", "Plan_tier": "B"}


def test_snapshot_carries_what_downstream_services_read():
    snapshot = normalise(email="ann@acme.com", phone="+14155552671", source="Demo_Request").snapshot()

    assert snapshot["lead_id"] == "L-1"
    assert snapshot["captured_at"] == NOW
    assert (snapshot["email"], snapshot["company_domain"], snapshot["phone_e164"], snapshot["source"]) == \
        ("ann@acme.com", "acme.com", "+14155552671", "demo_request")


@pytest.mark.parametrize("source", ["", "   ", "\t\n"])
def test_source_is_required(source):
    assert violations(source=source) == {"lead.attribution.source": "is required"}


def test_source_length_is_limited():
    assert list(violations(source="s" * 65)) == ["lead.attribution.source"]
    assert normalise(source="s" * 64).source == "s" * 64


@pytest.mark.parametrize("name, limit", [("first_name", 100), ("last_name", 100), ("company", 200),
                                         ("title", 200), ("industry", 100), ("medium", 200), ("campaign", 200)])
def test_text_field_limits(name, limit):
    normalise(**{name: "x" * limit})

    assert violations(**{name: "x" * (limit + 1)}) == \
        {f"lead.{name}": f"must be at most {limit} characters (got {limit + 1})"}


@pytest.mark.parametrize("size, ok", [(0, True), (10_000_000, True), (-1, False), (10_000_001, False)])
def test_company_size_range(size, ok):
    if ok:
        assert normalise(company_size=size).company_size == size
    else:
        assert list(violations(company_size=size)) == ["lead.company_size"]


# --- custom fields -----------------------------------------------------------------------------------

def test_custom_field_count_is_limited():
    normalise(custom_fields={f"k{i}": "v" for i in range(MAX_CUSTOM_FIELDS)})

    found = violations(custom_fields={f"k{i}": "v" for i in range(MAX_CUSTOM_FIELDS + 1)})

    assert found == {"lead.custom_fields": "at most 50 entries"}


@pytest.mark.parametrize("key", ["1st", "_private", "has space", "ünicode", "", "a/b", "k" * 65])
def test_bad_custom_field_key_is_named(key):
    found = violations(custom_fields={key: "v"})

    assert list(found) == [f"lead.custom_fields[{key[:64]}]"]
    assert "key must start with a letter" in found[f"lead.custom_fields[{key[:64]}]"]


@pytest.mark.parametrize("key", ["a", "utm.content", "Plan_tier-2", "k" * 64])
def test_good_custom_field_keys(key):
    assert normalise(custom_fields={key: "v"}).custom_fields == {key: "v"}


def test_custom_field_value_length_is_limited():
    normalise(custom_fields={"notes": "x" * 1000})

    assert violations(custom_fields={"notes": "x" * 1001}) == \
        {"lead.custom_fields[notes]": "must be at most 1000 characters (got 1001)"}


# --- all at once, and the prefix ----------------------------------------------------------------------

def test_every_violation_is_reported_at_once():
    found = violations(email="not-an-email", phone="12", country="XX", first_name="x" * 101, source=" ",
                       company_size=-5, custom_fields={"9lives": "x" * 1001})

    assert set(found) == {"lead.email", "lead.phone", "lead.country", "lead.first_name",
                          "lead.attribution.source", "lead.company_size", "lead.custom_fields[9lives]"}


def test_prefix_names_fields_inside_a_batch():
    with pytest.raises(InvalidArgument) as raised:
        normalise_lead(LeadInput(email="bad", source=""), "L-7", NOW, prefix="leads[3]")

    assert {v.field for v in raised.value.violations} == {"leads[3].email", "leads[3].attribution.source"}


# --- idempotency key ---------------------------------------------------------------------------------

@pytest.mark.parametrize("key, expected", [("", ""), ("abc-123", "abc-123"), ("  form-42 \n", "form-42"),
                                           ("k" * MAX_IDEMPOTENCY_KEY, "k" * MAX_IDEMPOTENCY_KEY)])
def test_idempotency_key_is_trimmed(key, expected):
    assert validate_idempotency_key(key) == expected


def test_overlong_idempotency_key_is_named():
    with pytest.raises(InvalidArgument) as raised:
        validate_idempotency_key("k" * (MAX_IDEMPOTENCY_KEY + 1), "requests[2].idempotency_key")

    assert [(v.field, v.description) for v in raised.value.violations] == \
        [("requests[2].idempotency_key", "must be at most 128 characters (got 129)")]


# --- de-duplication ---------------------------------------------------------------------------------------

def _lead(**fields):
    from services.capture.domain import Lead
    base = dict(lead_id="L-1", captured_at=datetime(2026, 11, 1, tzinfo=timezone.utc), source="webinar")
    return Lead(**{**base, **fields})


def test_a_lead_is_recognised_by_its_email_and_phone():
    from services.capture.domain import contact_keys
    assert contact_keys(_lead(email="li.na@acme.cn", phone_e164="+8613800138000")) == [
        "email:li.na@acme.cn", "phone:+8613800138000"]
    assert contact_keys(_lead(phone_e164="+8613800138000")) == ["phone:+8613800138000"]


def test_merging_keeps_what_the_lead_knew_and_fills_in_what_it_did_not():
    from services.capture.domain import merge_into
    existing = _lead(email="li.na@acme.cn", title="CTO", company="", custom_fields={"budget": "50k"},
                     marketing_consent=True)
    incoming = _lead(lead_id="L-2", email="li.na@acme.cn", title="Head of IT", company="ACME Robotics",
                     phone_e164="+8613800138000", source="google", custom_fields={"budget": "10k", "team": "5"},
                     marketing_consent=False, captured_at=datetime(2026, 11, 20, tzinfo=timezone.utc))

    merged = merge_into(existing, incoming)

    assert merged.lead_id == "L-1" and merged.captured_at == existing.captured_at
    assert (merged.title, merged.company, merged.phone_e164) == ("CTO", "ACME Robotics", "+8613800138000")
    assert merged.source == "webinar"  # first-touch attribution stays; the new touch is recorded apart
    assert merged.custom_fields == {"budget": "50k", "team": "5"}
    assert merged.marketing_consent is True
    assert existing.company == ""  # the existing record itself is not changed in place


@pytest.mark.parametrize("website", ["http://[oops", "[::1", "https://acme example.com", "ftp://acme.example"])
def test_a_website_that_is_no_web_address_is_refused_by_field(website):
    assert "is not a web address" in violations(website=website)["lead.website"]


def test_a_website_gives_its_host_without_www():
    assert normalise(website="https://www.Acme-Robotics.com/about").website == "https://www.Acme-Robotics.com/about"
    assert website_domain("https://www.Acme-Robotics.com/about") == "acme-robotics.com"
