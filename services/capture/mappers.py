"""Capture: proto <-> domain <-> document."""
import dataclasses
from dataclasses import fields as dataclass_fields

from leadflow.capture.v1 import capture_pb2
from leadflow.common.v1 import common_pb2

from services.capture import forms, matching
from services.capture.domain import Lead, LeadInput, custom_key_from
from services.capture.models import FormDocument, LeadDocument
from services.common.errors import FieldViolation, InvalidArgument, Validator
from services.common.mappers import to_timestamp

# Every Lead field is stored under its own name.
_STORED = tuple(f.name for f in dataclass_fields(Lead) if f.name != "lead_id")
_PLAIN_PROTO_FIELDS = ("email", "phone_e164", "first_name", "last_name", "company", "company_domain", "title",
                       "country", "region", "city", "address", "website", "industry", "company_size",
                       "marketing_consent", "external_id", "needs_review", "owner_id", "merged_into")


def lead_input_from_proto(message: capture_pb2.LeadInput) -> LeadInput:
    return LeadInput(
        email=message.email, phone=message.phone, first_name=message.first_name, last_name=message.last_name,
        company=message.company, title=message.title, country=message.country, region=message.region,
        city=message.city, address=message.address, website=message.website, industry=message.industry,
        company_size=message.company_size, source=message.attribution.source,
        medium=message.attribution.medium, campaign=message.attribution.campaign,
        custom_fields=dict(message.custom_fields), tags=list(message.tags),
        marketing_consent=message.marketing_consent, consent_text=message.consent_text,
        external_id=message.external_id, visitor_id=message.visitor_id, needs_review=message.needs_review)


def lead_to_document(lead: Lead) -> LeadDocument:
    return LeadDocument(id=lead.lead_id, search_terms=matching.search_terms(lead),
                        **{name: getattr(lead, name) for name in _STORED})


def lead_from_document(document: LeadDocument) -> Lead:
    values = {name: getattr(document, name) for name in _STORED}
    values["custom_fields"] = dict(values["custom_fields"])
    for name in ("tags", "possible_duplicate_of", "other_contacts", "touches"):
        values[name] = list(values[name])
    return Lead(lead_id=document.id, **values)


def touch_to_proto(touch: dict) -> capture_pb2.Touch:
    return capture_pb2.Touch(
        attribution=common_pb2.Attribution(source=touch.get("source", ""), medium=touch.get("medium", ""),
                                           campaign=touch.get("campaign", "")),
        captured_at=to_timestamp(touch.get("captured_at")), captured_by=touch.get("captured_by", ""))


def lead_to_proto(lead: Lead) -> capture_pb2.Lead:
    message = capture_pb2.Lead(
        lead_id=lead.lead_id, attribution=common_pb2.Attribution(source=lead.source, medium=lead.medium,
                                                                 campaign=lead.campaign),
        custom_fields=lead.custom_fields, captured_at=to_timestamp(lead.captured_at), tags=lead.tags,
        touches=[touch_to_proto(touch) for touch in lead.touches],
        possible_duplicate_of=lead.possible_duplicate_of, other_contacts=lead.other_contacts,
        **{name: getattr(lead, name) for name in _PLAIN_PROTO_FIELDS})
    if lead.marketing_consent:
        message.consent.CopyFrom(capture_pb2.Consent(
            marketing=True, text=lead.consent_text, given_at=to_timestamp(lead.consent_given_at),
            recorded_by=lead.consent_recorded_by))
    return message


# ---- forms ----------------------------------------------------------------------------------------

def form_from_proto(message: capture_pb2.Form) -> forms.Form:
    return forms.Form(
        form_id=message.form_id.strip(), name=message.name, consent_text=message.consent_text,
        consent_required=message.consent_required, allowed_origins=list(message.allowed_origins),
        tags=list(message.tags), source=message.attribution.source or "website",
        medium=message.attribution.medium, campaign=message.attribution.campaign,
        default_region=message.default_region, language=message.language or "en",
        thank_you_message=message.thank_you_message, redirect_url=message.redirect_url, active=not message.paused,
        fields=[forms.FormField(
            name=f.name, type=f.type or "text", label=f.label, required=f.required, options=list(f.options),
            pattern=f.pattern, max_length=f.max_length, placeholder=f.placeholder, help_text=f.help_text,
            default=f.default_value) for f in message.fields])


def form_to_definition(form: forms.Form) -> dict:
    """What is stored: the definition without the service-owned key, version and times."""
    definition = dataclasses.asdict(form)
    for owned in ("public_key", "version", "created_at", "updated_at"):
        definition.pop(owned, None)
    return definition


def form_from_document(document: FormDocument) -> forms.Form:
    definition = dict(document.definition)
    definition["fields"] = [forms.FormField(**f) for f in definition.get("fields", [])]
    return forms.Form(**definition, public_key=document.public_key, version=document.version,
                      updated_at=document.updated_at)


def form_to_proto(form: forms.Form, url: str, qr_url: str) -> capture_pb2.Form:
    return capture_pb2.Form(
        form_id=form.form_id, name=form.name, public_key=form.public_key, consent_text=form.consent_text,
        consent_required=form.consent_required, allowed_origins=form.allowed_origins, tags=form.tags,
        attribution=common_pb2.Attribution(source=form.source, medium=form.medium, campaign=form.campaign),
        default_region=form.default_region, language=form.language, thank_you_message=form.thank_you_message,
        redirect_url=form.redirect_url, paused=not form.active, version=form.version,
        updated_at=to_timestamp(form.updated_at), url=url, qr_url=qr_url,
        fields=[capture_pb2.FormField(
            name=f.name, type=f.type, label=f.label, required=f.required, options=f.options, pattern=f.pattern,
            max_length=f.max_length, placeholder=f.placeholder, help_text=f.help_text, default_value=f.default)
            for f in form.fields])


# ---- import, business cards, webhooks -------------------------------------------------------------

def import_report_to_proto(report, import_id: str) -> capture_pb2.ImportLeadFileResponse:
    return capture_pb2.ImportLeadFileResponse(
        rows=report.rows, accepted=report.accepted, merged=report.merged, unchanged=report.unchanged,
        rejected=report.rejected, mapping=report.mapping, dry_run=report.dry_run, import_id=import_id,
        rejected_rows=[capture_pb2.RejectedRow(row=r.row, column=r.column, reason=r.reason)
                       for r in report.rejected_rows])


def card_fields_to_proto(scan) -> list:
    found = [*scan.fields.values(), *scan.phones, *scan.emails]
    return [capture_pb2.CardField(name=f.name, value=f.value, confidence=f.confidence) for f in found]


_JSON_TEXT_FIELDS = ("email", "phone", "first_name", "last_name", "company", "title", "country", "region", "city",
                     "address", "website", "industry", "source", "medium", "campaign", "consent_text", "external_id",
                     "visitor_id")


# Extra answers an ad platform sends are kept as custom fields, made valid keys and capped, so an odd
# question ("预算?", "what's your budget?") never costs the lead itself.
MAX_WEBHOOK_EXTRAS = 40


def lead_input_from_json(payload, default_source: str) -> LeadInput:
    """A webhook's JSON lead: LeadInput's field names (utm_* accepted for attribution); any other
    scalar becomes a custom field, because ad platforms send extra answers we should not drop."""
    if not isinstance(payload, dict):
        raise InvalidArgument([FieldViolation("body", "must be a JSON object")])
    check = Validator()
    raw = LeadInput(source=default_source)
    custom, extras = {}, {}
    aliases = {"utm_source": "source", "utm_medium": "medium", "utm_campaign": "campaign"}
    for key, value in payload.items():
        name = aliases.get(key, key)
        if name in _JSON_TEXT_FIELDS:
            if check.check(isinstance(value, str), name, "must be a string"):
                setattr(raw, name, value)
        elif name == "company_size":
            if check.check(isinstance(value, int) and not isinstance(value, bool), name, "must be an integer"):
                raw.company_size = value
        elif name == "marketing_consent":
            if check.check(isinstance(value, bool), name, "must be true or false"):
                raw.marketing_consent = value
        elif name == "tags":
            if check.check(isinstance(value, list) and all(isinstance(t, str) for t in value), name,
                           "must be a list of strings"):
                raw.tags = value
        elif name == "custom_fields":
            if check.check(isinstance(value, dict), name, "must be an object"):
                custom.update({str(k): str(v) for k, v in value.items()})
        elif isinstance(value, (str, int, float, bool)) and len(extras) < MAX_WEBHOOK_EXTRAS:
            name = custom_key_from(str(key), f"field_{len(extras) + 1}")
            extras[name if name not in extras else f"{name}_{len(extras) + 1}"] = str(value)[:1000]
    check.raise_if_invalid()
    raw.custom_fields = {**extras, **custom}
    return raw
