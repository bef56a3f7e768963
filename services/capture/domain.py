"""Capture's pure logic: validate and normalise what a channel knows about a lead."""
import re
import unicodedata
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import urlsplit

import phonenumbers
import pycountry
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
MAX_ADDRESS = 300
MAX_CONSENT_TEXT = 2000
MAX_EXTERNAL_ID = 200
MAX_TAGS = 30
MAX_TAG = 64
VISITOR_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_HOST = re.compile(r"^[a-z0-9.-]+$")
CUSTOM_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_SPACES = re.compile(r"\s+")


@dataclass
class LeadInput:
    """What any channel (gRPC, form, webhook, file row, business card) knows about a lead, raw."""

    email: str = ""
    phone: str = ""
    first_name: str = ""
    last_name: str = ""
    company: str = ""
    title: str = ""
    country: str = ""  # ISO alpha-2/alpha-3 code or an English country name
    region: str = ""  # state/province: ISO 3166-2 code (e.g. "CN-GD") or its name
    city: str = ""
    address: str = ""
    website: str = ""
    industry: str = ""
    company_size: int = 0
    source: str = ""
    medium: str = ""
    campaign: str = ""
    custom_fields: dict = field(default_factory=dict)
    tags: list = field(default_factory=list)
    marketing_consent: bool = False
    consent_text: str = ""  # the exact wording the lead agreed to, as shown to them
    external_id: str = ""  # the lead's id in the system it came from (ERP, old CRM, ad platform)
    visitor_id: str = ""  # anonymous web visitor id, stitched to the lead when it identifies itself
    needs_review: bool = False  # a person should check it (e.g. a business card read with low confidence)


@dataclass
class Lead:
    """The stored lead record (normalised), as capture owns it."""

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
    region: str = ""
    city: str = ""
    address: str = ""
    website: str = ""
    industry: str = ""
    company_size: int = 0
    source: str = ""
    medium: str = ""
    campaign: str = ""
    custom_fields: dict = field(default_factory=dict)
    tags: list = field(default_factory=list)
    marketing_consent: bool = False
    consent_text: str = ""
    external_id: str = ""
    visitor_id: str = ""
    needs_review: bool = False
    # Known only to the stored record, not to a channel's capture:
    consent_given_at: datetime | None = None
    consent_recorded_by: str = ""
    possible_duplicate_of: list = field(default_factory=list)
    other_contacts: list = field(default_factory=list)
    owner_id: str = ""
    owner_team: str = ""
    merged_into: str = ""
    touches: list = field(default_factory=list)
    captured_by: str = ""

    def snapshot(self) -> dict:
        """What downstream services need to know about the lead (event payloads), so none of them
        has to call capture back."""
        return {name: getattr(self, name) for name in SNAPSHOT_FIELDS}


SNAPSHOT_FIELDS = (
    "lead_id", "captured_at", "email", "phone_e164", "first_name", "last_name", "company", "company_domain",
    "title", "country", "region", "city", "industry", "company_size", "source", "medium", "campaign",
    "custom_fields", "tags", "marketing_consent", "external_id", "needs_review", "possible_duplicate_of",
)


# Every lead carries the channel it came through as a tag, so lists and scoring rules can select
# "everything from the booth scanner" without knowing each source's name.
CHANNEL_TAGS = {"form": "channel:form", "webhook": "channel:webhook", "import": "channel:import",
                "business_card": "channel:business-card"}


def with_channel_tag(raw: "LeadInput", channel: str) -> "LeadInput":
    raw.tags = [*raw.tags, CHANNEL_TAGS[channel]]
    return raw


def clean_text(text: str) -> str:
    """Whitespace runs (tabs, newlines) become one space; ends trimmed."""
    return _SPACES.sub(" ", text).strip()


def is_custom_key(key: str) -> bool:
    """What a custom field may be called: a letter, then letters, digits, '_', '.', '-' (at most 64)."""
    return bool(CUSTOM_KEY.match(key)) and len(key) <= MAX_CUSTOM_KEY


_NOT_KEY_CHARACTER = re.compile(r"[^a-z0-9]+")
_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def custom_key_from(name: str, fallback: str) -> str:
    """A valid custom-field key made from a free-text name (a column header, a webhook's question):
    "TotalVisits" -> "total_visits", "2nd Phone" -> "field_2nd_phone"; ``fallback`` when the name has no
    Latin letters or digits to make one from (e.g. "微信号")."""
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_text = _CAMEL_HUMP.sub("_", ascii_text).lower()
    slug = _NOT_KEY_CHARACTER.sub("_", ascii_text).strip("_")
    if not slug:
        return fallback
    if not slug[0].isalpha():
        slug = f"field_{slug}"
    return slug[:MAX_CUSTOM_KEY].rstrip("_")


def canonical_label(text: str) -> str:
    """Source, medium, campaign and tags compare case- and spacing-insensitively: `Google` is `google`."""
    return clean_text(text).lower()


# Names people write that are not ISO 3166 short names (which pycountry knows), in English and Chinese.
COUNTRY_ALIASES = {
    "russia": "RU", "south korea": "KR", "korea": "KR", "north korea": "KP", "iran": "IR", "vietnam": "VN",
    "syria": "SY", "laos": "LA", "moldova": "MD", "bolivia": "BO", "venezuela": "VE", "tanzania": "TZ",
    "taiwan": "TW", "czech republic": "CZ", "macau": "MO", "uk": "GB", "great britain": "GB", "england": "GB",
    "uae": "AE", "usa": "US", "america": "US", "holland": "NL", "turkey": "TR",
    "中国": "CN", "中国大陆": "CN", "美国": "US", "德国": "DE", "日本": "JP", "英国": "GB", "法国": "FR",
    "香港": "HK", "中国香港": "HK", "澳门": "MO", "台湾": "TW", "新加坡": "SG", "韩国": "KR", "印度": "IN",
}


def country_code(text: str) -> str | None:
    """ISO alpha-2 code for a code (alpha-2/alpha-3), an English country name or a common alias;
    None if unknown."""
    value = clean_text(text)
    if not value:
        return ""
    if value.casefold() in COUNTRY_ALIASES:
        return COUNTRY_ALIASES[value.casefold()]
    try:
        country = pycountry.countries.lookup(value)
    except LookupError:
        return None
    return country.alpha_2


def region_code(text: str, country: str) -> str:
    """An ISO 3166-2 code when the region is one (or is a known subdivision name of the country);
    otherwise the cleaned text, because regional naming is too varied to reject."""
    value = clean_text(text)
    if not value:
        return ""
    if "-" in value and pycountry.subdivisions.get(code=value.upper()):
        return value.upper()
    if country:
        wanted = value.casefold()
        for subdivision in pycountry.subdivisions.get(country_code=country) or ():
            if subdivision.name.casefold() == wanted:
                return subdivision.code
    return value


def website_domain(url: str) -> str | None:
    """The host of a website (without "www."), or None when it is not a web address."""
    value = url.strip()
    if not value:
        return ""
    try:
        parsed = urlsplit(value if "://" in value else f"http://{value}")
        host = (parsed.hostname or "").lower()
    except ValueError:  # "http://[oops" and the like: not a web address, which the caller reports
        return None
    if parsed.scheme not in ("http", "https") or "." not in host or not _HOST.match(host):
        return None
    return host.removeprefix("www.")


def normalise_tags(tags, field_name: str, check: Validator) -> list[str]:
    cleaned = sorted({canonical_label(tag) for tag in tags if tag and tag.strip()})
    check.check(len(cleaned) <= MAX_TAGS, field_name, f"at most {MAX_TAGS} tags")
    for tag in cleaned:
        check.check(len(tag) <= MAX_TAG, field_name, f"tag {tag[:40]!r} is longer than {MAX_TAG} characters")
    return cleaned


def normalise_lead(raw: LeadInput, lead_id: str, captured_at: datetime, prefix: str = "lead",
                   default_region: str = "") -> Lead:
    """Validate every field (all violations at once, named ``<prefix>.<field>``) and normalise.

    ``default_region`` (a form's or an import's country) reads phone numbers written without a
    country code when the lead names no country itself."""
    check = Validator()
    f = lambda name: f"{prefix}.{name}"  # noqa: E731

    email = raw.email.strip()
    phone = raw.phone.strip()
    external_id = clean_text(raw.external_id)
    check.check(bool(email or phone or external_id), f("email"), "an email, a phone or an external id is required")

    country = country_code(raw.country)
    check.check(country is not None, f("country"),
                f"{raw.country[:60]!r} is not an ISO 3166-1 country code or English country name")
    country = country or ""

    normalised_email, company_domain = "", ""
    if email and check.max_length(email, 254, f("email")):
        try:
            normalised_email = validate_email(email, check_deliverability=False).normalized.lower()
            domain = normalised_email.rsplit("@", 1)[1]
            company_domain = "" if domain in FREE_MAIL_DOMAINS else domain
        except EmailNotValidError as exc:
            check.check(False, f("email"), f"is not a valid email address: {exc}")

    website = raw.website.strip()
    if website and check.max_length(website, MAX_TEXT, f("website")):
        host = website_domain(website)
        if check.check(host is not None, f("website"), "is not a web address (e.g. https://example.com)"):
            company_domain = company_domain or ("" if host in FREE_MAIL_DOMAINS else host)

    phone_e164 = ""
    if phone and check.max_length(phone, 40, f("phone")):
        region = country or default_region.upper() or None
        try:
            parsed = phonenumbers.parse(phone, region)
            if phonenumbers.is_valid_number(parsed):
                phone_e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
            else:
                check.check(False, f("phone"), "is not a valid phone number")
        except phonenumbers.NumberParseException:
            check.check(False, f("phone"), f"is not a phone number; use +<country code> or set {f('country')}")

    for name, limit in (("first_name", MAX_NAME), ("last_name", MAX_NAME), ("company", MAX_TEXT),
                        ("title", MAX_TEXT), ("industry", MAX_NAME), ("medium", MAX_TEXT),
                        ("campaign", MAX_TEXT), ("region", MAX_NAME), ("city", MAX_NAME),
                        ("address", MAX_ADDRESS), ("consent_text", MAX_CONSENT_TEXT),
                        ("external_id", MAX_EXTERNAL_ID)):
        check.max_length(getattr(raw, name), limit, f(name))
    if raw.visitor_id:
        check.check(bool(VISITOR_ID.match(raw.visitor_id)), f("visitor_id"),
                    "must be 1-128 letters, digits, '_', '.' or '-'")

    source = canonical_label(raw.source)
    if check.required(source, f("attribution.source")):
        check.max_length(source, MAX_SOURCE, f("attribution.source"))
    check.check(0 <= raw.company_size <= MAX_COMPANY_SIZE, f("company_size"),
                f"must be between 0 and {MAX_COMPANY_SIZE}")

    check.check(len(raw.custom_fields) <= MAX_CUSTOM_FIELDS, f("custom_fields"),
                f"at most {MAX_CUSTOM_FIELDS} entries")
    for key, value in raw.custom_fields.items():
        check.check(is_custom_key(key), f(f"custom_fields[{key[:64]}]"),
                    "key must start with a letter and use letters, digits, '_', '.', '-' (at most 64)")
        check.max_length(value, MAX_CUSTOM_VALUE, f(f"custom_fields[{key[:64]}]"))
    tags = normalise_tags(raw.tags, f("tags"), check)
    check.raise_if_invalid()

    consent_text = raw.consent_text.strip() if raw.marketing_consent else ""
    return Lead(
        lead_id=lead_id, captured_at=captured_at, email=normalised_email, phone_e164=phone_e164,
        first_name=clean_text(raw.first_name), last_name=clean_text(raw.last_name), company=clean_text(raw.company),
        company_domain=company_domain, title=clean_text(raw.title), country=country,
        region=region_code(raw.region, country), city=clean_text(raw.city), address=clean_text(raw.address),
        website=website, industry=canonical_label(raw.industry), company_size=raw.company_size, source=source,
        medium=canonical_label(raw.medium), campaign=canonical_label(raw.campaign),
        custom_fields=dict(raw.custom_fields), tags=tags, marketing_consent=raw.marketing_consent,
        consent_text=consent_text, consent_given_at=captured_at if raw.marketing_consent else None,
        external_id=external_id, visitor_id=raw.visitor_id, needs_review=raw.needs_review,
    )


# Fields a later capture may fill in when the existing lead does not know them yet.
CONSENT_FIELDS = ("marketing_consent", "consent_text", "consent_given_at", "consent_recorded_by")
FILLABLE = ("phone_e164", "email", "first_name", "last_name", "company", "company_domain", "title", "country",
             "region", "city", "address", "website", "industry", "company_size", "external_id", "visitor_id")


def contact_keys(lead: Lead) -> list[str]:
    """The exact identities a lead is recognised by, surest first: its normalised email, its E.164
    phone, and its id in the system it came from."""
    keys = []
    if lead.email:
        keys.append(f"email:{lead.email}")
    if lead.phone_e164:
        keys.append(f"phone:{lead.phone_e164}")
    if lead.external_id:
        keys.append(f"external:{lead.external_id}")
    return keys


def touch_of(lead: Lead, captured_by: str) -> dict:
    """One capture of a lead by a channel: kept on the lead whether it created or merged it. Its id
    lets an unmerge take back exactly the touches a merge brought (times alone can coincide)."""
    return {"touch_id": uuid.uuid4().hex, "source": lead.source, "medium": lead.medium, "campaign": lead.campaign,
            "captured_at": lead.captured_at, "captured_by": captured_by}


def merge_into(existing: Lead, incoming: Lead) -> Lead:
    """The same person captured again: keep what the lead already says (its first-touch attribution
    included), fill in what it did not know, add new custom fields and tags, remember other emails
    and phones, and keep consent once given (with the text and time it was first given)."""
    merged = replace(existing, custom_fields={**incoming.custom_fields, **existing.custom_fields},
                     tags=sorted(set(existing.tags) | set(incoming.tags)),
                     other_contacts=list(existing.other_contacts))
    for name in FILLABLE:
        if not getattr(merged, name) and getattr(incoming, name):
            setattr(merged, name, getattr(incoming, name))
    for contact in (incoming.email, incoming.phone_e164, *incoming.other_contacts):
        if contact and contact not in (merged.email, merged.phone_e164) and contact not in merged.other_contacts:
            merged.other_contacts.append(contact)
    if incoming.marketing_consent and not existing.marketing_consent:
        merged.marketing_consent = True
        merged.consent_text = incoming.consent_text
        merged.consent_given_at = incoming.consent_given_at
        merged.consent_recorded_by = incoming.consent_recorded_by
    return merged


def validate_idempotency_key(key: str, field_name: str = "idempotency_key") -> str:
    check = Validator()
    check.max_length(key, MAX_IDEMPOTENCY_KEY, field_name)
    check.raise_if_invalid()
    return key.strip()
