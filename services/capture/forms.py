"""Lead-capture web forms: the form an admin defines as data, its public HTML page, QR code and submissions."""
import dataclasses
import functools
import gettext
import hashlib
import io
import math
import re
import re._constants as sre_constants  # private, but the only parser of Python's own regex dialect (3.11 pinned)
import re._parser as sre_parser
import secrets
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import jinja2
import phonenumbers
import pycountry
import segno
from email_validator import EmailNotValidError, validate_email

from services.capture.domain import (
    MAX_ADDRESS,
    MAX_COMPANY_SIZE,
    MAX_CONSENT_TEXT,
    MAX_CUSTOM_VALUE,
    MAX_NAME,
    MAX_SOURCE,
    MAX_TAG,
    MAX_TAGS,
    MAX_TEXT,
    VISITOR_ID,
    LeadInput,
    canonical_label,
    clean_text,
    is_custom_key,
)
from services.common.errors import FailedPrecondition, InvalidArgument, Validator

FIELD_TYPES = ("text", "email", "tel", "number", "textarea", "select", "checkbox", "hidden", "country")
LANGUAGES = ("en", "zh")

# The LeadInput attributes a form field may fill, with the most characters each accepts. The limits are
# the lead's own (normalise_lead), so a value the form lets through is not rejected one step later.
STANDARD_TARGETS = {
    "email": 254, "phone": 40, "first_name": MAX_NAME, "last_name": MAX_NAME, "company": MAX_TEXT,
    "title": MAX_TEXT, "country": MAX_NAME, "region": MAX_NAME, "city": MAX_NAME, "address": MAX_ADDRESS,
    "website": MAX_TEXT, "industry": MAX_NAME, "company_size": 12,
}
CUSTOM_PREFIX = "custom."
# Targets whose value has a meaning only some input types can produce; every other target takes any
# free-text type, and custom fields take every type.
_TARGET_TYPES = {
    "email": {"email", "hidden"},
    "phone": {"tel", "hidden"},
    "country": {"country", "select", "text", "hidden"},
    "company_size": {"number", "select", "hidden"},
}
_TEXT_TYPES = {"text", "textarea", "select", "hidden"}
_PATTERN_TYPES = {"text", "email", "tel", "number", "textarea", "hidden"}

# Names the public page posts besides the form's own fields.
HONEYPOT_FIELD = "contact_me_by_fax_only"
CONSENT_FIELD = "consent"
CONSENT_DIGEST_FIELD = "consent_digest"
VISITOR_ID_FIELD = "visitor_id"
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign")

MAX_FORM_ID = 64
MAX_FORM_NAME = 200
MAX_FIELDS = 50
MAX_LABEL = 200
MAX_OPTIONS = 200
MAX_OPTION = 200
MAX_PLACEHOLDER = 200
MAX_HELP_TEXT = 500
MAX_ORIGINS = 20
MAX_URL = 2048
MAX_THANK_YOU = 2000
MAX_QR_URL = 1024
# Python's re cannot be interrupted and, under eventlet, a slow match stalls every green thread of the
# worker. So a pattern is kept short, runs only on short input, and its worst-case backtracking is bounded
# before it is accepted (see _pattern_cost): the worst accepted pattern takes tens of milliseconds.
MAX_PATTERN = 200
MAX_PATTERN_INPUT = 200
MAX_PATTERN_COST = 10_000_000

_FORM_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_PUBLIC_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_INTEGER = re.compile(r"^[+-]?\d{1,15}$")
_TRUE = frozenset({"on", "true", "1", "yes", "y", "checked"})
_FALSE = frozenset({"", "off", "false", "0", "no", "n"})
_DEFAULT_PORTS = {"http": 80, "https": 443}

# Built-in strings of the public pages; the admin writes labels, consent and thank-you text themselves.
MESSAGES = {
    "en": {
        "html_lang": "en",
        "submit": "Submit",
        "required_note": "Fields marked * are required.",
        "choose": "Choose…",
        "yes": "Yes",
        "honeypot": "Leave this field empty",
        "errors_title": "Please correct the following:",
        "thank_you_title": "Thank you",
        "thank_you": "Thank you! We will be in touch soon.",
    },
    "zh": {
        "html_lang": "zh-CN",
        "submit": "提交",
        "required_note": "标有 * 的为必填项。",
        "choose": "请选择…",
        "yes": "是",
        "honeypot": "请勿填写此栏",
        "errors_title": "请更正以下内容：",
        "thank_you_title": "谢谢",
        "thank_you": "感谢您的提交，我们会尽快与您联系。",
    },
}


@dataclasses.dataclass
class FormField:
    """One input of a form, and the LeadInput attribute it fills (``custom.<key>`` for a custom field)."""

    name: str
    type: str = "text"
    label: str = ""
    required: bool = False
    options: list = dataclasses.field(default_factory=list)  # select values, "value" or "value|Label"
    pattern: str = ""  # a Python regex the whole value must match (checked on the server only)
    max_length: int = 0  # 0: the most the target accepts
    placeholder: str = ""
    help_text: str = ""
    default: str = ""  # the initial value; for a hidden field, the value posted unless the page was prefilled

    @property
    def custom_key(self) -> str:
        return self.name[len(CUSTOM_PREFIX):] if self.name.startswith(CUSTOM_PREFIX) else ""

    def choices(self) -> list[tuple[str, str]]:
        """(value, label) of each select option."""
        pairs = []
        for option in self.options:
            value, _, label = option.partition("|")
            pairs.append((value.strip(), label.strip() or value.strip()))
        return pairs

    def limit(self) -> int:
        """The most characters a submitted value may have."""
        cap = MAX_CUSTOM_VALUE if self.custom_key else STANDARD_TARGETS.get(self.name, MAX_TEXT)
        if self.pattern:
            cap = min(cap, MAX_PATTERN_INPUT)
        return min(self.max_length, cap) if self.max_length > 0 else cap


@dataclasses.dataclass
class Form:
    """A lead-capture form as an admin defines it; the capture service serves it at /f/<public_key>."""

    form_id: str
    name: str
    fields: list = dataclasses.field(default_factory=list)
    public_key: str = ""
    consent_text: str = ""  # shown next to the consent checkbox and recorded, verbatim, with the consent
    consent_required: bool = False
    allowed_origins: list = dataclasses.field(default_factory=list)  # "https://www.example.com"; empty: any
    tags: list = dataclasses.field(default_factory=list)  # added to every submission
    source: str = "website"
    medium: str = ""
    campaign: str = ""
    default_region: str = ""  # ISO alpha-2, reads phone numbers written without a country code
    language: str = "en"
    thank_you_message: str = ""
    redirect_url: str = ""
    active: bool = True
    version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None


def new_public_key() -> str:
    """An unguessable key for the public URL, so form ids (which admins choose) are never exposed."""
    return secrets.token_urlsafe(18)


# --- definition ------------------------------------------------------------------------------------------

def _normalised_origin(url: str) -> str | None:
    """scheme://host[:port] of a URL as browsers send it in Origin (default port dropped), or None."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if parts.scheme not in _DEFAULT_PORTS or not host:
        return None
    try:
        host = host.encode("idna").decode("ascii")  # browsers send internationalised hosts as punycode
    except UnicodeError:
        return None
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != _DEFAULT_PORTS[parts.scheme] else "")


def _origin_error(origin: str) -> str | None:
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "is not an origin: use scheme://host[:port], e.g. https://www.example.com"
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or "*" in origin:
        return "must be http(s)://host[:port] with a host name (no wildcards), e.g. https://www.example.com"
    if parts.path or parts.query or parts.fragment or "?" in origin or "#" in origin:
        return "must be only scheme://host[:port], without a path, query or trailing slash"
    if parts.username is not None or parts.password is not None:
        return "must not contain a user name or password"
    if _normalised_origin(origin) is None:
        return "has a host name that cannot be encoded"
    return None


def _url_error(url: str) -> str | None:
    if any(char.isspace() or ord(char) < 32 for char in url):  # it ends up in a Location header
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "must be an absolute http(s) URL"
    if parts.scheme not in _DEFAULT_PORTS or not host:
        return "must be an absolute http(s) URL"
    return None


def _saturate(value: int) -> int:
    return min(value, MAX_PATTERN_COST + 1)


def _power(base: int, exponent: int) -> int:
    if base <= 1 or exponent == 0:
        return 1
    if exponent * math.log2(base) > math.log2(MAX_PATTERN_COST + 1):
        return MAX_PATTERN_COST + 1
    return _saturate(base ** exponent)


def _pattern_cost(items) -> int:
    """An upper bound of the ways a backtracking matcher can split an input of MAX_PATTERN_INPUT
    characters among the pattern's quantifiers: adjacent quantifiers multiply, alternatives add, and a
    quantified group multiplies its content once per repetition, so (a+)+ is astronomical and a+b+ is not.
    It rejects some safe patterns (e.g. (?:foo|bar)+), which is the price of never hanging a worker."""
    total = 1
    for op, av in items:
        if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT):
            low, high, item = av
            high = MAX_PATTERN_INPUT if high is sre_constants.MAXREPEAT else min(high, MAX_PATTERN_INPUT)
            low = min(low, high)
            cost = _saturate(_power(_pattern_cost(item), high) * (high - low + 1))
        elif op is sre_constants.SUBPATTERN:
            cost = _pattern_cost(av[-1])
        elif op is sre_constants.ATOMIC_GROUP:
            cost = _pattern_cost(av)
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            cost = _pattern_cost(av[1])
        elif op is sre_constants.BRANCH:
            cost = _saturate(sum(_pattern_cost(branch) for branch in av[1]))
        elif op in (sre_constants.GROUPREF, sre_constants.GROUPREF_EXISTS):
            raise ValueError("back-references are not supported")
        else:
            cost = 1
        total = _saturate(total * cost)
    return total


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> re.Pattern:
    """The compiled field pattern, or ValueError saying why it cannot be used (invalid, too long, or
    it could backtrack for too long on hostile input)."""
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"must be at most {MAX_PATTERN} characters")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"is not a valid regular expression: {exc}") from None
    except (RecursionError, OverflowError):
        raise ValueError("is too complex") from None
    if _pattern_cost(sre_parser.parse(pattern)) > MAX_PATTERN_COST:
        raise ValueError("could take too long to match (nested or many adjacent repetitions); simplify it")
    return compiled


@functools.lru_cache(maxsize=4)
def _countries(language: str) -> tuple[tuple[str, str], ...]:
    """(alpha-2 code, name in the form's language) of every country, sorted by name."""
    if language == "zh":
        translate = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=["zh_CN"],
                                        fallback=True).gettext
        names = [(country.alpha_2, translate(country.name)) for country in pycountry.countries]
    else:
        names = [(country.alpha_2, getattr(country, "common_name", country.name)) for country in pycountry.countries]
    return tuple(sorted(names, key=lambda pair: pair[1]))


_COUNTRY_CODES = frozenset(country.alpha_2 for country in pycountry.countries)


def _clean_field(field: FormField) -> FormField:
    return dataclasses.replace(
        field, name=field.name.strip(), type=field.type.strip().lower(), label=clean_text(field.label),
        options=[option.strip() for option in field.options], placeholder=clean_text(field.placeholder),
        help_text=field.help_text.strip(), default=field.default.strip(), required=bool(field.required),
    )


def _check_field(field: FormField, path: str, region: str, check: Validator) -> None:
    name = field.name
    key = field.custom_key
    target_ok = name in STANDARD_TARGETS or is_custom_key(key)
    check.check(target_ok, f"{path}.name", f"{name[:60]!r} is not a lead field: use one of "
                f"{', '.join(STANDARD_TARGETS)}, or custom.<key> (a letter, then letters, digits, '_', '.', '-')")
    if not check.check(field.type in FIELD_TYPES, f"{path}.type", f"must be one of {', '.join(FIELD_TYPES)}"):
        return
    if target_ok and not field.custom_key:
        allowed = _TARGET_TYPES.get(name, _TEXT_TYPES)
        check.check(field.type in allowed, f"{path}.type", f"{name} takes a field of type {', '.join(sorted(allowed))}")

    if field.type != "hidden":
        check.required(field.label, f"{path}.label")  # a visible input needs a label, for everyone
    check.max_length(field.label, MAX_LABEL, f"{path}.label")
    check.max_length(field.placeholder, MAX_PLACEHOLDER, f"{path}.placeholder")
    check.max_length(field.help_text, MAX_HELP_TEXT, f"{path}.help_text")
    cap = MAX_CUSTOM_VALUE if field.custom_key else STANDARD_TARGETS.get(name, MAX_TEXT)
    if field.pattern:
        cap = min(cap, MAX_PATTERN_INPUT)
    check.check(0 <= field.max_length <= cap, f"{path}.max_length",
                f"must be between 0 (no limit of its own) and {cap}")

    if field.type == "select":
        options = field.choices()
        if check.check(0 < len(options) <= MAX_OPTIONS, f"{path}.options",
                       f"a select needs 1 to {MAX_OPTIONS} options"):
            seen = set()
            for index, (value, label) in enumerate(options):
                where = f"{path}.options[{index}]"
                if not check.check(bool(value), where, "needs a value (\"value\" or \"value|Label\")"):
                    continue
                check.check(len(value) <= MAX_OPTION and len(label) <= MAX_OPTION, where,
                            f"value and label must be at most {MAX_OPTION} characters each")
                check.check(value not in seen, where, f"duplicate value {value[:60]!r}")
                seen.add(value)
                if name == "company_size":
                    check.check(bool(_INTEGER.match(value)) and 0 <= int(value) <= MAX_COMPANY_SIZE, where,
                                f"company_size options must be whole numbers from 0 to {MAX_COMPANY_SIZE}")
                elif name == "country":
                    check.check(value.upper() in _COUNTRY_CODES, where, "country options must be ISO alpha-2 codes")
    else:
        check.check(not field.options, f"{path}.options", "only a select has options")

    pattern_ok = True
    if field.pattern:
        if check.check(field.type in _PATTERN_TYPES, f"{path}.pattern", f"a {field.type} field takes no pattern"):
            try:
                compile_pattern(field.pattern)
            except ValueError as exc:
                pattern_ok = check.check(False, f"{path}.pattern", str(exc))

    if field.default and pattern_ok and target_ok:
        _, problem = _checked_value(field, field.default, region)
        check.check(problem is None, f"{path}.default", f"is not a value the field accepts: {problem}")


def validate_form(form: Form, field: str = "form") -> Form:
    """Check a form definition (every violation at once, named ``<field>.<attribute>``) and return a
    normalised copy: trimmed text, lower-case source and tags, origins as browsers send them."""
    check = Validator()
    fields = [_clean_field(item) for item in form.fields]
    cleaned = dataclasses.replace(
        form, name=clean_text(form.name), fields=fields, consent_text=form.consent_text.strip(),
        consent_required=bool(form.consent_required), source=canonical_label(form.source),
        medium=canonical_label(form.medium),
        campaign=clean_text(form.campaign), default_region=form.default_region.strip().upper(),
        language=form.language.strip().lower(), thank_you_message=form.thank_you_message.strip(),
        redirect_url=form.redirect_url.strip(), active=bool(form.active),
        allowed_origins=[origin.strip() for origin in form.allowed_origins],
        tags=list(dict.fromkeys(canonical_label(tag) for tag in form.tags if tag.strip())),
    )

    if check.required(form.form_id, f"{field}.form_id"):
        check.check(len(form.form_id) <= MAX_FORM_ID and bool(_FORM_ID.match(form.form_id)), f"{field}.form_id",
                    f"must be 1-{MAX_FORM_ID} lower-case letters, digits and '-', starting with a letter or digit")
    if check.required(cleaned.name, f"{field}.name"):
        check.max_length(cleaned.name, MAX_FORM_NAME, f"{field}.name")
    if form.public_key:
        check.check(bool(_PUBLIC_KEY.match(form.public_key)), f"{field}.public_key",
                    "must be 16-64 URL-safe characters (see new_public_key)")

    if check.check(0 < len(fields) <= MAX_FIELDS, f"{field}.fields", f"a form has 1 to {MAX_FIELDS} fields"):
        seen = {}
        for index, item in enumerate(fields):
            path = f"{field}.fields[{index}]"
            _check_field(item, path, cleaned.default_region, check)
            if item.name in seen:
                check.check(False, f"{path}.name", f"duplicates fields[{seen[item.name]}]")
            seen.setdefault(item.name, index)
        check.check("email" in seen or "phone" in seen, f"{field}.fields",
                    "needs an email or a phone field, so a lead can be contacted")

    check.max_length(cleaned.consent_text, MAX_CONSENT_TEXT, f"{field}.consent_text")
    check.check(bool(cleaned.consent_text) or not cleaned.consent_required, f"{field}.consent_text",
                "is required when consent is required")

    if check.check(len(cleaned.allowed_origins) <= MAX_ORIGINS, f"{field}.allowed_origins",
                   f"at most {MAX_ORIGINS} origins"):
        for index, origin in enumerate(cleaned.allowed_origins):
            problem = _origin_error(origin)
            check.check(problem is None, f"{field}.allowed_origins[{index}]", problem or "")
    cleaned.allowed_origins = list(dict.fromkeys(
        _normalised_origin(origin) or origin for origin in cleaned.allowed_origins))

    check.check(len(cleaned.tags) <= MAX_TAGS, f"{field}.tags", f"at most {MAX_TAGS} tags")
    for index, tag in enumerate(cleaned.tags):
        check.max_length(tag, MAX_TAG, f"{field}.tags[{index}]")

    if check.required(cleaned.source, f"{field}.source"):
        check.max_length(cleaned.source, MAX_SOURCE, f"{field}.source")
    check.max_length(cleaned.medium, MAX_TEXT, f"{field}.medium")
    check.max_length(cleaned.campaign, MAX_TEXT, f"{field}.campaign")
    if cleaned.default_region:
        check.check(cleaned.default_region in phonenumbers.SUPPORTED_REGIONS, f"{field}.default_region",
                    "must be an ISO 3166-1 alpha-2 country code, e.g. CN")
    check.check(cleaned.language in LANGUAGES, f"{field}.language", f"must be one of {', '.join(LANGUAGES)}")
    check.max_length(cleaned.thank_you_message, MAX_THANK_YOU, f"{field}.thank_you_message")
    if cleaned.redirect_url and check.max_length(cleaned.redirect_url, MAX_URL, f"{field}.redirect_url"):
        problem = _url_error(cleaned.redirect_url)
        check.check(problem is None, f"{field}.redirect_url", problem or "")
    check.check(isinstance(form.version, int) and form.version >= 0, f"{field}.version", "must be a whole number ≥ 0")
    check.raise_if_invalid()
    return cleaned


# --- the public endpoint -------------------------------------------------------------------------------------

def _text(value) -> str | None:
    """One submitted value as text: the first of a list (multipart/urlencoded repeat names), JSON scalars
    as strings; None for what no input produces (objects, files)."""
    if isinstance(value, (list, tuple)):
        value = value[0] if value else ""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value
    return None


def is_bot_submission(values: dict) -> bool:
    """True when the honeypot was filled in: people never see it, form-filling bots fill every input.
    The service should answer as if it succeeded, so the bot learns nothing."""
    value = _text(values.get(HONEYPOT_FIELD))
    return value is None or bool(value.strip())


def origin_allowed(form: Form, origin: str | None, referer: str | None, own_origin: str = "") -> bool:
    """Whether a submission comes from a page allowed to post to the form: with allowed_origins set,
    the Origin header (or, without one, the Referer's origin) must be listed or be the service's own
    (its form page posting back). It keeps other sites from posting to the form from visitors'
    browsers; it is no defence against scripts, which send whatever headers they like."""
    if not form.allowed_origins:
        return True
    # Browsers send "Origin: null" from sandboxed frames and file pages: no origin to judge.
    claimed = origin.strip() if origin and origin.strip() != "null" else (referer or "")
    actual = _normalised_origin(claimed) if claimed else None
    if actual is None:
        return False
    allowed = {_normalised_origin(item) for item in form.allowed_origins}
    if own_origin:
        allowed.add(_normalised_origin(own_origin))
    return actual in allowed


def frame_ancestors(form: Form, own_origin: str = "") -> str:
    """The sources of the form page's ``Content-Security-Policy: frame-ancestors`` directive (the value
    after the directive name): an embedded form posts with the iframe's own origin, which the origin check
    must allow, so the sites that may embed the form are limited here instead."""
    if not form.allowed_origins:
        return "*"
    sources = ["'self'", *(_normalised_origin(item) or item for item in form.allowed_origins)]
    own = _normalised_origin(own_origin) if own_origin else None
    if own and own not in sources:
        sources.append(own)
    return " ".join(sources)


def consent_digest(consent_text: str) -> str:
    """A short fingerprint of the consent wording, posted back by the page that showed it."""
    return hashlib.sha256(consent_text.encode()).hexdigest()[:16]


def _phone_region(form: Form, values: dict) -> str:
    """The lead's own country when it gave a recognisable one, else the form's default region."""
    for item in form.fields:
        if item.name == "country":
            raw = values.get(item.name)
            text = (item.default if raw is None and item.type == "hidden" else _text(raw) or "").strip()
            try:
                return pycountry.countries.lookup(text).alpha_2 if text else form.default_region
            except LookupError:
                return form.default_region
    return form.default_region


def _checked_value(field: FormField, text: str, region: str) -> tuple[object, str | None]:
    """(value for the lead, None) or (None, what is wrong); text is already trimmed."""
    if field.type == "checkbox":
        word = text.lower()
        if word not in _TRUE | _FALSE:
            return None, "is not a checkbox value"
        if field.required and word not in _TRUE:
            return None, "must be ticked"
        return ("true" if word in _TRUE else "false"), None
    if not text:
        return ("", "is required") if field.required else ("", None)
    limit = field.limit()
    if len(text) > limit:  # before the pattern: a pattern never runs on long input
        return None, f"must be at most {limit} characters (got {len(text)})"
    if field.pattern and not compile_pattern(field.pattern).fullmatch(text):
        return None, "does not have the expected format"

    if field.type == "select" and text not in {value for value, _ in field.choices()}:
        return None, "is not one of the choices"
    if field.type == "country" and text.upper() not in _COUNTRY_CODES:
        return None, "is not an ISO 3166-1 alpha-2 country code"
    if field.type == "country":
        text = text.upper()
    if field.type == "number" or field.name == "company_size":
        if not _INTEGER.match(text):
            return None, "must be a whole number"
        if field.name == "company_size":
            number = int(text)
            if not 0 <= number <= MAX_COMPANY_SIZE:
                return None, f"must be between 0 and {MAX_COMPANY_SIZE}"
            return number, None
        return str(int(text)), None
    if field.type == "email" or field.name == "email":
        try:
            validate_email(text, check_deliverability=False)
        except EmailNotValidError:
            return None, "is not a valid email address"
    if field.type == "tel" or field.name == "phone":
        try:
            parsed = phonenumbers.parse(text, region or None)
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is None or not phonenumbers.is_valid_number(parsed):
            hint = "" if region else "; start it with + and the country code"
            return None, f"is not a valid phone number{hint}"
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), None
    return text, None


def _attribution(form: Form, values: dict, query: dict, check: Validator) -> dict:
    """Source, medium and campaign: the page's hidden UTM inputs, then the query string (the QR code's
    ?source=), then the form's defaults."""
    result = {"source": form.source, "medium": form.medium, "campaign": form.campaign}
    keys = {"source": ("utm_source", "source"), "medium": ("utm_medium",), "campaign": ("utm_campaign",)}
    for target, names in keys.items():
        candidates = [(f"fields.{name}", values.get(name)) for name in names]
        candidates += [(f"query.{name}", query.get(name)) for name in names]
        for path, raw in candidates:
            text = clean_text(_text(raw) or "")
            if text:
                if check.max_length(text, MAX_SOURCE if target == "source" else MAX_TEXT, path):
                    result[target] = text
                break
    return result


def parse_submission(form: Form, values: dict, query: dict | None = None) -> LeadInput:
    """A visitor's submission as a LeadInput, or InvalidArgument naming every bad ``fields.<name>``
    (``fields.consent`` for the consent box, ``query.<name>`` for a bad query parameter). The form is
    assumed validated; an inactive form raises FailedPrecondition. The honeypot and origin are the
    caller's to check first; normalise_lead still runs on the result."""
    if not form.active:
        raise FailedPrecondition(f"form {form.form_id!r} is not accepting submissions")
    query = query or {}
    check = Validator()
    region = _phone_region(form, values)
    lead, custom = {}, {}

    for item in form.fields:
        path = f"fields.{item.name}"
        raw = values.get(item.name)
        text = item.default if raw is None and item.type == "hidden" else _text(raw)
        if not check.check(text is not None, path, "must be a single text value"):
            continue
        text = text.replace("\r\n", "\n").strip()  # browsers post CRLF; maxlength counted one character
        try:
            value, problem = _checked_value(item, text, region)
        except ValueError as exc:  # a pattern validate_form would have refused
            raise FailedPrecondition(f"form {form.form_id!r} field {item.name!r} has an unusable pattern: {exc}") \
                from None
        if not check.check(problem is None, path, problem or ""):
            continue
        if value == "":
            continue  # LeadInput's own default ("" or 0) stands for "not given"
        if item.custom_key:
            custom[item.custom_key] = value
        else:
            lead[item.name] = value

    contact_fields = [item.name for item in form.fields if item.name in ("email", "phone")]
    bad = {violation.field for violation in check.violations}
    if contact_fields and not any(lead.get(name) for name in contact_fields) and \
            not any(f"fields.{name}" in bad for name in contact_fields):
        check.check(False, f"fields.{contact_fields[0]}", "an email or a phone is required")

    consent = (_text(values.get(CONSENT_FIELD)) or "").strip().lower()
    check.check(consent in _TRUE | _FALSE, f"fields.{CONSENT_FIELD}", "is not a checkbox value")
    ticked = bool(form.consent_text) and consent in _TRUE  # no wording shown, no consent to record
    if form.consent_text and form.consent_required:
        check.check(ticked, f"fields.{CONSENT_FIELD}", "must be ticked to submit the form")
    shown = (_text(values.get(CONSENT_DIGEST_FIELD)) or "").strip()
    if ticked and shown and shown != consent_digest(form.consent_text):
        # The admin changed the wording after the page was loaded: what would be recorded is not what the
        # visitor agreed to, so they are asked again.
        check.check(False, f"fields.{CONSENT_FIELD}", "the consent wording has changed; please read it and tick again")

    attribution = _attribution(form, values, query, check)
    check.raise_if_invalid()

    # A visitor id is tracking, not something the visitor typed: a malformed one is dropped, the lead kept.
    visitor_id = (_text(values.get(VISITOR_ID_FIELD)) or "").strip()
    return LeadInput(
        **lead, **attribution, custom_fields=custom, tags=list(form.tags), marketing_consent=ticked,
        consent_text=form.consent_text if ticked else "",
        visitor_id=visitor_id if VISITOR_ID.match(visitor_id) else "",
    )


def field_errors(error: InvalidArgument) -> dict[str, str]:
    """parse_submission's violations keyed by form input name, to show them on the re-rendered page."""
    errors = {}
    for violation in error.violations:
        name = violation.field.removeprefix("fields.")
        errors[name] = f"{errors[name]}; {violation.description}" if name in errors else violation.description
    return errors


# --- pages and QR code --------------------------------------------------------------------------------------

@functools.cache
def _templates() -> jinja2.Environment:
    # Autoescape everything: labels, options, consent and thank-you text are written by admins and the
    # prefill comes from a URL anyone can craft.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )


_AUTOCOMPLETE = {
    "email": "email", "phone": "tel", "first_name": "given-name", "last_name": "family-name",
    "company": "organization", "title": "organization-title", "country": "country", "region": "address-level1",
    "city": "address-level2", "address": "street-address", "website": "url",
}


def _messages(form: Form) -> dict:
    return MESSAGES.get(form.language, MESSAGES["en"])


def _action(action_url: str, own_origin: str) -> str:
    if action_url.startswith("/") and not action_url.startswith("//"):
        # Absolute when the service's origin is known, so the markup also works pasted into another site.
        return own_origin.rstrip("/") + action_url if own_origin else action_url
    if _url_error(action_url) is None:
        return action_url
    raise ValueError(f"action_url must be a path or an http(s) URL, not {action_url[:60]!r}")


def _field_view(index: int, field: FormField, form: Form, prefill: dict, errors: dict) -> dict:
    given = _text(prefill.get(field.name))
    value = given if given else field.default
    ident = f"f{index}"
    error = errors.get(field.name, "")
    view = {
        "id": ident, "name": field.name, "type": field.type, "label": field.label, "required": field.required,
        "value": value, "placeholder": field.placeholder, "help": field.help_text, "error": error,
        "maxlength": field.limit(), "autocomplete": _AUTOCOMPLETE.get(field.name, ""),
        "describedby": " ".join(part for part, shown in ((f"{ident}-help", field.help_text),
                                                         (f"{ident}-error", error)) if shown),
        "checked": value.lower() in _TRUE, "options": [],
        "input_type": {"email": "email", "tel": "tel", "number": "number"}.get(field.type, "text"),
        "min": "0" if field.name == "company_size" else "",
    }
    if field.type == "select":
        view["options"] = [(option, label, option == value) for option, label in field.choices()]
    elif field.type == "country":
        countries = list(_countries(form.language))
        # The form's own market first: picking it from ~250 names is the common case.
        countries.sort(key=lambda pair: pair[0] != form.default_region)
        view["options"] = [(code, name, code == value.upper()) for code, name in countries]
    return view


def render_form_html(form: Form, action_url: str, prefill: dict, own_origin: str = "",
                     errors: dict | None = None) -> str:
    """The form's public page: self-contained HTML (inline CSS, no script, no external asset) for an
    iframe or a QR code. ``prefill`` (the query string, or a rejected submission) fills fields and the
    hidden utm_source (or ``source``), utm_medium and utm_campaign inputs; the consent box never starts
    ticked. ``errors`` (see field_errors) are shown next to their fields."""
    errors = errors or {}
    prefill = prefill or {}
    messages = _messages(form)
    fields = [_field_view(index, item, form, prefill, errors) for index, item in enumerate(form.fields)]
    hidden = {name: clean_text(_text(prefill.get(name)) or "") for name in UTM_FIELDS}
    hidden["utm_source"] = hidden["utm_source"] or clean_text(_text(prefill.get("source")) or "")
    visitor_id = (_text(prefill.get(VISITOR_ID_FIELD)) or "").strip()
    if VISITOR_ID.match(visitor_id):
        hidden[VISITOR_ID_FIELD] = visitor_id
    consent = None
    if form.consent_text:
        hidden[CONSENT_DIGEST_FIELD] = consent_digest(form.consent_text)
        consent = {"text": form.consent_text, "required": form.consent_required,
                   "error": errors.get(CONSENT_FIELD, "")}
    labels = {item.name: item.label or item.name for item in form.fields}
    summary = [(labels.get(name, name), message) for name, message in errors.items()]
    return _templates().get_template("form.html").render(
        page="form", m=messages, title=form.name, action=_action(action_url, own_origin), fields=fields,
        hidden=hidden, consent=consent, honeypot=HONEYPOT_FIELD, summary=summary,
        any_required=form.consent_required or any(item.required for item in form.fields if item.type != "hidden"),
    )


def render_thank_you_html(form: Form) -> str:
    """The page a browser that posted without a script lands on (when the form has no redirect_url)."""
    messages = _messages(form)
    return _templates().get_template("form.html").render(
        page="thanks", m=messages, title=form.name, message=form.thank_you_message or messages["thank_you"],
    )


def form_url(base_url: str, public_key: str, source: str | None = None, medium: str | None = None,
             campaign: str | None = None) -> str:
    """The public URL of a form, with the attribution a QR code or a link pre-fills."""
    params = {key: value for key, value in (("source", source), ("utm_medium", medium), ("utm_campaign", campaign))
              if value}
    url = f"{base_url.rstrip('/')}/f/{quote(public_key, safe='')}"
    return f"{url}?{urlencode(params)}" if params else url


QR_ERROR = "q"  # a quarter of the code may be dirty or covered (printed booths, a logo) and still read
QR_BORDER = 4  # the quiet zone the QR specification asks for


def form_qr_png(url: str, scale: int = 8) -> bytes:
    """A PNG QR code opening ``url``: black on white, a regular (not micro) QR code at error level Q."""
    if not 1 <= scale <= 40:
        raise ValueError("scale must be between 1 and 40")
    if len(url) > MAX_QR_URL:
        raise ValueError(f"a URL in a QR code must be at most {MAX_QR_URL} characters")
    code = segno.make(url, error=QR_ERROR, boost_error=False, micro=False)
    buffer = io.BytesIO()
    code.save(buffer, kind="png", scale=scale, border=QR_BORDER)
    return buffer.getvalue()
