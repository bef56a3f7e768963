"""Fuzzy matching and search terms: when two captures are the same person, and what finds a lead."""
from datetime import datetime, timezone

import pytest

from services.capture.domain import Lead, LeadInput, merge_into, normalise_lead
from services.capture.matching import (MERGE_THRESHOLD, POSSIBLE_DUPLICATE_THRESHOLD, best_matches, company_key,
                                       match_keys, query_words, search_terms, similarity)

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=timezone.utc)


def lead(lead_id="L-1", **fields) -> Lead:
    return Lead(lead_id=lead_id, captured_at=NOW, **fields)


@pytest.mark.parametrize(("written", "key"), [
    ("ACME GmbH", "acme"), ("Acme Inc.", "acme"), ("acme", "acme"), ("Müller Logistik AG", "muller logistik"),
    ("上海云帆科技有限公司", "上海云帆科技"), ("Haier  Robotics Co., Ltd.", "haier robotics"),
])
def test_company_key_ignores_legal_form_case_and_accents(written, key):
    assert company_key(written) == key


def test_same_name_and_company_is_a_merge_and_a_near_name_is_only_a_possible_duplicate():
    anna = lead("L-1", first_name="Anna", last_name="Schmidt", company="Umbrella GmbH", email="anna@umbrella.com")
    same = lead("L-2", first_name="anna", last_name="schmidt", company="UMBRELLA")
    cousin = lead("L-3", first_name="Anne", last_name="Schmitz", company="Umbrella")
    stranger = lead("L-4", first_name="Bob", last_name="Stone", company="Umbrella")

    assert similarity(same, anna) >= MERGE_THRESHOLD
    assert POSSIBLE_DUPLICATE_THRESHOLD <= similarity(cousin, anna) < MERGE_THRESHOLD
    assert [m.lead_id for m in best_matches(stranger, [anna])] == []


def test_different_emails_never_merge_however_alike_the_names():
    anna = lead("L-1", first_name="Anna", last_name="Schmidt", company="Umbrella", email="anna@umbrella.com")
    namesake = lead("L-2", first_name="Anna", last_name="Schmidt", company="Umbrella", email="a.s@umbrella.com")
    [match] = best_matches(namesake, [anna])
    assert POSSIBLE_DUPLICATE_THRESHOLD <= match.score < MERGE_THRESHOLD


def test_a_lead_without_company_or_domain_is_never_matched_fuzzily():
    assert match_keys(lead(first_name="Anna", last_name="Schmidt")) == []
    assert match_keys(lead(company="Acme GmbH", company_domain="acme.com")) == []
    assert match_keys(lead(last_name="Schmidt", company="Acme GmbH", company_domain="acme.com")) == \
        ["domain:acme.com:s", "company:acme:s"]


def test_search_terms_cover_name_company_email_and_phone_prefixes():
    terms = set(search_terms(lead(first_name="Anna", last_name="Schmidt", company="Nordlicht Logistik",
                                  email="a.schmidt@nordlicht.de", phone_e164="+4915123456789")))
    assert {"ann", "anna", "schm", "nord", "logistik", "a.schmidt@nordlicht.de", "a.schmidt", "nordlicht.de",
            "4915123456789", "15123456789", "6789"} <= terms
    assert "an" not in terms and "491512" not in terms
    chinese = set(search_terms(lead(first_name="娜", last_name="李", company="上海云帆科技有限公司")))
    assert {"李娜", "李", "娜"} <= chinese
    assert query_words("  Anna   +49151 ") == ["anna", "49151"]


def test_website_gives_the_company_domain_when_the_email_is_free_mail():
    normalised = normalise_lead(LeadInput(email="li.na@163.com", website="https://www.yunfan-tech.cn/about",
                                          source="card", tags=["Expo", "expo", " VIP "]), "L-1", NOW)
    assert normalised.company_domain == "yunfan-tech.cn"
    assert normalised.tags == ["expo", "vip"]


def test_merge_keeps_first_consent_collects_other_contacts_and_unions_tags():
    existing = lead(email="anna@umbrella.com", tags=["vip"], marketing_consent=True, consent_text="v1 text",
                    consent_given_at=NOW)
    incoming = lead("L-2", email="anna.schmidt@umbrella.com", phone_e164="+4930123456", tags=["expo"],
                    marketing_consent=True, consent_text="v2 text", title="CFO")
    merged = merge_into(existing, incoming)
    assert (merged.email, merged.phone_e164, merged.title) == ("anna@umbrella.com", "+4930123456", "CFO")
    assert merged.other_contacts == ["anna.schmidt@umbrella.com"] and merged.tags == ["expo", "vip"]
    assert merged.consent_text == "v1 text"
