"""ConvertLead through the real service: account matched by domain, contact by email, one
opportunity per lead however often asked, lead_converted announced once, bad input named by field."""
import uuid

from grpc import StatusCode
from leadflow.opportunity.v1 import opportunity_pb2, opportunity_pb2_grpc

from services.opportunity.models import AccountDocument, ContactDocument, LeadOwnershipDocument, OpportunityDocument
from services.opportunity.service import OpportunityService
from tests.integration.conftest import start_isolated
from tests.support import new_event, violations_of, wait_until


def assign(publish, rep_id="rep.one", team="team-a") -> str:
    lead_id = str(uuid.uuid4())
    publish("routing", new_event("lead_assigned", {"lead_id": lead_id, "rep_id": rep_id}, team=team,
                                 assigned_at="2026-11-29T10:00:01.000Z", source="web", task_id="t-1",
                                 owner_version=1))
    assert wait_until(lambda: LeadOwnershipDocument.objects(id=lead_id).count())
    return lead_id


def conversion(lead_id: str, **opportunity) -> opportunity_pb2.ConvertLeadRequest:
    return opportunity_pb2.ConvertLeadRequest(
        lead_id=lead_id,
        account=opportunity_pb2.Account(name="Acme GmbH", domain="www.Acme.de", industry="Manufacturing",
                                        country="Germany"),
        contact=opportunity_pb2.Contact(first_name="Max", last_name="Keller", email="Max.Keller@acme.de"),
        opportunity=opportunity_pb2.OpportunityDraft(**{"name": "Acme - 200 seats", "amount": "48000.00",
                                                        "currency": "eur", "close_date": "2099-03-31",
                                                        **opportunity}))


def test_a_lead_converts_once_into_account_contact_and_opportunity(run_service, infra, tokens, tap, publish):
    service = start_isolated(run_service, infra, OpportunityService)
    rep = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["rep"])
    converted = tap("opportunity", "lead_converted")
    lead_id = assign(publish)

    first = rep.ConvertLead(conversion(lead_id))
    again = rep.ConvertLead(conversion(lead_id, name="renamed on the retry"))

    opportunity = first.opportunity
    assert (first.account_created, first.contact_created, first.already_converted) == (True, True, False)
    assert (first.account.domain, first.account.country, first.contact.email) == \
        ("acme.de", "DE", "max.keller@acme.de")
    assert (opportunity.pipeline_id, opportunity.stage_id, opportunity.probability, opportunity.forecast_category) == \
        ("new-business", "qualification", 10, "pipeline")
    assert (opportunity.owner_id, opportunity.team, opportunity.amount, opportunity.currency) == \
        ("rep.one", "team-a", "48000.00", "EUR")
    assert opportunity.status == opportunity_pb2.OPPORTUNITY_STATUS_OPEN and opportunity.version == 1
    assert again.already_converted and again.opportunity == opportunity  # nothing changed
    assert OpportunityDocument.objects(lead_id=lead_id).count() == 1
    [event] = converted.collect(1)
    assert (event["lead_id"], event["opportunity_id"], event["rep_id"]) == (lead_id, opportunity.opportunity_id,
                                                                            "rep.one")
    assert converted.settle(0.5) == [event]
    assert rep.GetOpportunity(opportunity_pb2.GetOpportunityRequest(
        opportunity_id=opportunity.opportunity_id)).opportunity == opportunity

    # A second lead from the same company and person: the account and contact are matched, not copied.
    handed_over = rep.ConvertLead(conversion(assign(publish), owner_id="ae.zhou", name="Acme - renewal"))
    assert (handed_over.account_created, handed_over.contact_created) == (False, False)
    assert handed_over.account.account_id == first.account.account_id
    assert handed_over.opportunity.owner_id == "ae.zhou"
    assert AccountDocument.objects.count() == 1 and ContactDocument.objects.count() == 1


def test_conversion_mistakes_are_named_and_only_the_owner_side_may_convert(run_service, infra, tokens, publish):
    service = start_isolated(run_service, infra, OpportunityService)
    rep = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["rep"])
    other = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["other_rep"])
    lead_id = assign(publish)

    bad = rep.error("ConvertLead", opportunity_pb2.ConvertLeadRequest(
        lead_id=lead_id, account=opportunity_pb2.Account(domain="not a domain", country="Atlantis"),
        contact=opportunity_pb2.Contact(email="max@"),
        opportunity=opportunity_pb2.OpportunityDraft(amount="lots", close_date="2020-01-01")))
    bad_date = rep.error("ConvertLead", conversion(lead_id, close_date="31.03.2099"))
    no_pipeline = rep.error("ConvertLead", conversion(lead_id, pipeline_id="partner"))
    denied = other.error("ConvertLead", conversion(lead_id))
    unassigned = rep.error("ConvertLead", conversion(str(uuid.uuid4())))

    assert set(violations_of(bad.status)) == {
        "account.name", "account.domain", "account.country", "contact.email", "opportunity.name",
        "opportunity.amount", "opportunity.close_date"}
    assert set(violations_of(bad_date.status)) == {"opportunity.close_date"}
    assert no_pipeline.code == StatusCode.NOT_FOUND and unassigned.code == StatusCode.NOT_FOUND
    assert denied.code == StatusCode.PERMISSION_DENIED
    assert OpportunityDocument.objects.count() == 0 and AccountDocument.objects.count() == 0
