"""Capture's pure logic: validate and normalise what a channel knows about a lead."""
import re
from dataclasses import dataclass, field, asdict
from datetime import datetime

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from services.common.errors import Validator

# Free-mail providers say nothing about the lead's company, so they give no company domain.
FREE_MAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "yahoo.com", "icloud.com",
    "me.com", "aol.com", "proton.me", "protonmail.com", "gmx.de", "gmx.net", "web.de", "mail.ru",
    "yandex.ru", "qq.com", "foxmail.com", "163.com", "126.com", "sina.com", "sohu.com", "aliyun.com",
})

MAX_NAME = 100
MAX_TEXT = 200
MAX_SOURCE = 64
MAX_CUSTOM_FIELDS = 50
MAX_CUSTOM_KEY = 64
MAX_CUSTOM_VALUE = 1000
MAX_COMPANY_SIZE = 10_000_000
MAX_IDEMPOTENCY_KEY = 128
_CUSTOM_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_SPACES = re.compile(r"\s+")


@dataclass
class LeadInput:
    email: str = ""
    phone: str = ""
    first_name: str = ""
    last_name: str = ""
    company: str = ""
    title: str = ""
    country: str = ""
    industry: str = ""
    company_size: int = 0
    source: str = ""
    medium: str = ""
    campaign: str = ""
    custom_fields: dict = field(default_factory=dict)
    marketing_consent: bool = False


@dataclass
class Lead:
    lead_id: str
    captured_at: datetime
    email: str = ""
    phone_e164: str = ""
    first_name: str = ""
    last_name: str = ""
    company: str = ""
    company_domain: str = ""
    title: str = ""
    country: str = ""
    industry: str = ""
    company_size: int = 0
    source: str = ""
    medium: str = ""
    campaign: str = ""
    custom_fields: dict = field(default_factory=dict)
    marketing_consent: bool = False

    def snapshot(self) -> dict:
        """What downstream services need to know about the lead (event payloads)."""
        data = asdict(self)
        data["captured_at"] = self.captured_at
        return data


def _clean(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def normalise_lead(raw: LeadInput, lead_id: str, captured_at: datetime, prefix: str = "lead") -> Lead:
    """Validate every field (all violations at once, named ``<prefix>.<field>``) and normalise."""
    check = Validator()
    f = lambda name: f"{prefix}.{name}"  # noqa: E731

    email = raw.email.strip()
    phone = raw.phone.strip()
    country = raw.country.strip().upper()
    check.check(bool(email or phone), f("email"), "an email or a phone is required")

    if country:
        check.check(country in phonenumbers.SUPPORTED_REGIONS, f("country"),
                    f"{raw.country!r} is not an ISO 3166-1 alpha-2 country code")

    normalised_email, company_domain = "", ""
    if email and check.max_length(email, 254, f("email")):
        try:
            normalised_email = validate_email(email, check_deliverability=False).normalized.lower()
            domain = normalised_email.rsplit("@", 1)[1]
            company_domain = "" if domain in FREE_MAIL_DOMAINS else domain
        except EmailNotValidError as exc:
            check.check(False, f("email"), f"is not a valid email address: {exc}")

    phone_e164 = ""
    if phone and check.max_length(phone, 40, f("phone")):
        try:
            parsed = phonenumbers.parse(phone, country or None)
            if phonenumbers.is_valid_number(parsed):
                phone_e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
            else:
                check.check(False, f("phone"), "is not a valid phone number")
        except phonenumbers.NumberParseException:
            check.check(False, f("phone"), f"is not a phone number; use +<country code> or set {f('country')}")

    for name, limit in (("first_name", MAX_NAME), ("last_name", MAX_NAME), ("company", MAX_TEXT),
                        ("title", MAX_TEXT), ("industry", MAX_NAME), ("medium", MAX_TEXT),
                        ("campaign", MAX_TEXT)):
        check.max_length(getattr(raw, name), limit, f(name))

    source = _clean(raw.source).lower()
    if check.required(source, f("attribution.source")):
        check.max_length(source, MAX_SOURCE, f("attribution.source"))
    check.check(0 <= raw.company_size <= MAX_COMPANY_SIZE, f("company_size"),
                f"must be between 0 and {MAX_COMPANY_SIZE}")

    check.check(len(raw.custom_fields) <= MAX_CUSTOM_FIELDS, f("custom_fields"),
                f"at most {MAX_CUSTOM_FIELDS} entries")
    for key, value in raw.custom_fields.items():
        check.check(bool(_CUSTOM_KEY.match(key)) and len(key) <= MAX_CUSTOM_KEY, f(f"custom_fields[{key[:64]}]"),
                    "key must start with a letter and use letters, digits, '_', '.', '-' (at most 64)")
        check.max_length(value, MAX_CUSTOM_VALUE, f(f"custom_fields[{key[:64]}]"))
    check.raise_if_invalid()

    return Lead(
        lead_id=lead_id, captured_at=captured_at, email=normalised_email, phone_e164=phone_e164,
        first_name=_clean(raw.first_name), last_name=_clean(raw.last_name), company=_clean(raw.company),
        company_domain=company_domain, title=_clean(raw.title), country=country,
        industry=_clean(raw.industry).lower(), company_size=raw.company_size, source=source,
        medium=_clean(raw.medium).lower(), campaign=_clean(raw.campaign), custom_fields=dict(raw.custom_fields),
        marketing_consent=raw.marketing_consent,
    )


# Fields a later capture may fill in when the existing lead does not know them yet.
_FILLABLE = ("phone_e164", "email", "first_name", "last_name", "company", "company_domain", "title", "country",
             "industry", "company_size")


def contact_keys(lead: Lead) -> list[str]:
    """The exact identities a lead is recognised by: its normalised email and its E.164 phone."""
    keys = []
    if lead.email:
        keys.append(f"email:{lead.email}")
    if lead.phone_e164:
        keys.append(f"phone:{lead.phone_e164}")
    return keys


def touch_of(lead: Lead, captured_by: str) -> dict:
    """One capture of a lead by a channel: kept on the lead whether it created or merged it."""
    return {"source": lead.source, "medium": lead.medium, "campaign": lead.campaign,
            "captured_at": lead.captured_at, "captured_by": captured_by}


def merge_into(existing: Lead, incoming: Lead) -> Lead:
    """The same person captured again: keep what the lead already says (its first-touch attribution
    included), fill in what it did not know, add new custom fields, and keep consent once given."""
    merged = Lead(**{**existing.__dict__, "custom_fields": {**incoming.custom_fields, **existing.custom_fields}})
    for name in _FILLABLE:
        if not getattr(merged, name) and getattr(incoming, name):
            setattr(merged, name, getattr(incoming, name))
    merged.marketing_consent = existing.marketing_consent or incoming.marketing_consent
    return merged


def validate_idempotency_key(key: str, field_name: str = "idempotency_key") -> str:
    check = Validator()
    check.max_length(key, MAX_IDEMPOTENCY_KEY, field_name)
    check.raise_if_invalid()
    return key.strip()
