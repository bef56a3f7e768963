"""Capture: proto <-> domain <-> document."""
from leadflow.capture.v1 import capture_pb2
from leadflow.common.v1 import common_pb2

from services.capture.domain import Lead, LeadInput
from services.capture.models import LeadDocument
from services.common.mappers import to_timestamp

_LEAD_FIELDS = ("email", "phone_e164", "first_name", "last_name", "company", "company_domain", "title",
                "country", "industry", "company_size", "source", "medium", "campaign", "marketing_consent")


def lead_input_from_proto(message: capture_pb2.LeadInput) -> LeadInput:
    return LeadInput(
        email=message.email, phone=message.phone, first_name=message.first_name, last_name=message.last_name,
        company=message.company, title=message.title, country=message.country, industry=message.industry,
        company_size=message.company_size, source=message.attribution.source,
        medium=message.attribution.medium, campaign=message.attribution.campaign,
        custom_fields=dict(message.custom_fields), marketing_consent=message.marketing_consent)


def lead_to_document(lead: Lead, captured_by: str) -> LeadDocument:
    return LeadDocument(id=lead.lead_id, captured_at=lead.captured_at, custom_fields=lead.custom_fields,
                        captured_by=captured_by, **{name: getattr(lead, name) for name in _LEAD_FIELDS})


def lead_from_document(document: LeadDocument) -> Lead:
    return Lead(lead_id=document.id, captured_at=document.captured_at, custom_fields=dict(document.custom_fields),
                **{name: getattr(document, name) for name in _LEAD_FIELDS})


def lead_to_proto(lead: Lead) -> capture_pb2.Lead:
    return capture_pb2.Lead(
        lead_id=lead.lead_id, email=lead.email, phone_e164=lead.phone_e164, first_name=lead.first_name,
        last_name=lead.last_name, company=lead.company, company_domain=lead.company_domain, title=lead.title,
        country=lead.country, industry=lead.industry, company_size=lead.company_size,
        attribution=common_pb2.Attribution(source=lead.source, medium=lead.medium, campaign=lead.campaign),
        custom_fields=lead.custom_fields, marketing_consent=lead.marketing_consent,
        captured_at=to_timestamp(lead.captured_at))
