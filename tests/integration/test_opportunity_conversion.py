"""ConvertLead through the real service: account matched by domain, contact by email, one
opportunity per lead however often asked, lead_converted announced once, bad input named by field."""
import uuid

from grpc import StatusCode
from leadflow.opportunity.v1 import opportunity_pb2, opportunity_pb2_grpc
from leadflow.reporting.v1 import reporting_pb2, reporting_pb2_grpc

from services.opportunity.models import AccountDocument, ContactDocument, LeadOwnershipDocument, OpportunityDocument
from services.opportunity.service import OpportunityService
from services.reporting.models import OpportunityFactDocument
from services.reporting.service import ReportingService
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
    handed_over = rep.ConvertLead(conversion(assign(publish), owner_id="ae.zhou", team="enterprise",
                                             name="Acme - renewal"))
    assert (handed_over.account_created, handed_over.contact_created) == (False, False)
    assert handed_over.account.account_id == first.account.account_id
    assert (handed_over.opportunity.owner_id, handed_over.opportunity.team) == ("ae.zhou", "enterprise")
    assert AccountDocument.objects.count() == 1 and ContactDocument.objects.count() == 1
    # Naming another owner is the SDR -> AE handoff, kept on the record and announced.
    assert list(opportunity.owner_history) == []
    assert [(h.from_owner, h.to_owner, h.by, h.reason) for h in handed_over.opportunity.owner_history] == \
        [("rep.one", "ae.zhou", "rep.one", "handoff")]
    handoff = converted.collect(2)[1]
    assert (handoff["rep_id"], handoff["owner_id"], handoff["handed_off"], event["handed_off"]) == \
        ("rep.one", "ae.zhou", True, False)


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


def converted(rep, publish) -> opportunity_pb2.Opportunity:
    return rep.ConvertLead(conversion(assign(publish))).opportunity


def move(opportunity_id: str, stage_id: str, expected_version: int = 0):
    return opportunity_pb2.MoveOpportunityStageRequest(opportunity_id=opportunity_id, stage_id=stage_id,
                                                       expected_version=expected_version)


def test_reporting_keeps_each_opportunitys_newest_snapshot(run_service, infra, tokens, tap, publish):
    reporting_service = start_isolated(run_service, infra, ReportingService)
    service = start_isolated(run_service, infra, OpportunityService)
    rep = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["rep"])
    updates = tap("opportunity", "opportunity_updated", "opportunity_stage_changed")
    opportunity = converted(rep, publish)
    rep.LogActivity(opportunity_pb2.LogActivityRequest(lead_id=opportunity.lead_id,
                                                       type=opportunity_pb2.ACTIVITY_TYPE_CALL, subject="intro call"))

    rep.UpdateOpportunity(opportunity_pb2.UpdateOpportunityRequest(
        opportunity_id=opportunity.opportunity_id, opportunity=opportunity_pb2.Opportunity(amount="52000.50"),
        update_mask=["amount"]))
    rep.UpdateOpportunity(opportunity_pb2.UpdateOpportunityRequest(
        opportunity_id=opportunity.opportunity_id, opportunity=opportunity_pb2.Opportunity(
            qualification={"need": "yes", "budget": "yes"}),
        update_mask=["qualification.need", "qualification.budget"]))
    rep.MoveOpportunityStage(move(opportunity.opportunity_id, "discovery"))

    announced = updates.collect(3)
    assert [(e["event_type"], e["version"], e["amount"]) for e in announced] == [
        ("opportunity_updated", 2, "52000.50"), ("opportunity_updated", 3, "52000.50"),
        ("opportunity_stage_changed", 4, "52000.50")]
    assert announced[0]["changed"] == ["amount"]
    # Each carries where the deal stands for the forecast: the stage's probability and category.
    assert [(e["probability"], e["forecast_category"]) for e in announced] == [
        (10, "pipeline"), (10, "pipeline"), (25, "pipeline")]

    def fact():
        return OpportunityFactDocument.objects(id=opportunity.opportunity_id).first()
    assert wait_until(lambda: fact() is not None and fact().version == 4)
    stored = fact()
    assert (stored.stage_id, stored.status, str(stored.amount), stored.currency, stored.owner_id, stored.team) == \
        ("discovery", "open", "52000.50", "EUR", "rep.one", "team-a")
    # Every stage move is kept for the time spent in each stage.
    assert [(m["from"], m["to"]) for m in sorted(stored.moves, key=lambda m: m["at"])] == [
        ("", "qualification"), ("qualification", "discovery")]
    # ... and the funnel follows the converted lead's opportunity through the pipeline.
    reporting = reporting_service.grpc(reporting_pb2_grpc.ReportingServiceStub, tokens["rep"])
    funnel = reporting.GetFunnel(reporting_pb2.GetFunnelRequest())
    assert {reporting_pb2.FunnelStage.Name(step.stage): step.leads for step in funnel.steps}[
        "FUNNEL_STAGE_CONVERTED"] == 1
    assert [(s.pipeline_id, s.stage_id, s.opportunities) for s in funnel.opportunity_stages] == [
        ("new-business", "qualification", 1), ("new-business", "discovery", 1)]

    # The opportunity's record is its lead's activity log, listed through either id.
    by_opportunity = rep.ListActivities(opportunity_pb2.ListActivitiesRequest(
        opportunity_id=opportunity.opportunity_id)).activities
    assert [a.subject for a in by_opportunity] == ["intro call"]
    outsider = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["outsider_rep"])
    assert outsider.error("ListActivities", opportunity_pb2.ListActivitiesRequest(
        opportunity_id=opportunity.opportunity_id)).code == StatusCode.PERMISSION_DENIED


def test_exit_criteria_block_a_move_by_name_until_they_are_met(run_service, infra, tokens, tap, publish):
    service = start_isolated(run_service, infra, OpportunityService)
    rep = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["rep"])
    changed = tap("opportunity", "opportunity_stage_changed")
    opportunity = converted(rep, publish)

    blocked = rep.error("MoveOpportunityStage", move(opportunity.opportunity_id, "discovery"))
    skipping = rep.error("MoveOpportunityStage", move(opportunity.opportunity_id, "proposal"))
    unknown = rep.error("MoveOpportunityStage", move(opportunity.opportunity_id, "party"))
    updated = rep.UpdateOpportunity(opportunity_pb2.UpdateOpportunityRequest(
        opportunity_id=opportunity.opportunity_id, expected_version=1,
        opportunity=opportunity_pb2.Opportunity(qualification={"need": "200 seats", "budget": "EUR 50k"},
                                                next_step="demo on Friday"),
        update_mask=["qualification.need", "qualification.budget", "next_step"])).opportunity
    still = rep.error("MoveOpportunityStage", move(opportunity.opportunity_id, "discovery"))
    rep.LogActivity(opportunity_pb2.LogActivityRequest(lead_id=opportunity.lead_id,
                                                       type=opportunity_pb2.ACTIVITY_TYPE_CALL))
    moved = rep.MoveOpportunityStage(move(opportunity.opportunity_id, "discovery", updated.version)).opportunity

    assert blocked.code == StatusCode.FAILED_PRECONDITION
    assert blocked.message == ("cannot move to discovery: qualification: field need is empty; "
                               "qualification: field budget is empty; qualification: no call logged")
    assert "does not skip stages" in skipping.message
    assert unknown.code == StatusCode.INVALID_ARGUMENT and set(violations_of(unknown.status)) == {"stage_id"}
    assert (updated.version, dict(updated.qualification)["need"], updated.next_step) == (2, "200 seats",
                                                                                         "demo on Friday")
    assert still.message == "cannot move to discovery: qualification: no call logged"
    assert (moved.stage_id, moved.probability, moved.version) == ("discovery", 25, 3)
    assert [(h.from_stage, h.to_stage, h.by) for h in moved.history] == [
        ("", "qualification", "rep.one"), ("qualification", "discovery", "rep.one")]
    [event] = changed.collect(1)
    assert (event["from_stage"], event["to_stage"], event["lead_id"]) == ("qualification", "discovery",
                                                                          opportunity.lead_id)


def test_a_stale_version_is_refused_and_concurrent_changes_keep_every_history_entry(
        run_service, infra, tokens, publish):
    service = start_isolated(run_service, infra, OpportunityService)
    rep = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["rep"])
    manager = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["manager"])
    opportunity = converted(rep, publish)
    rep.UpdateOpportunity(opportunity_pb2.UpdateOpportunityRequest(
        opportunity_id=opportunity.opportunity_id, opportunity=opportunity_pb2.Opportunity(
            qualification={"need": "yes", "budget": "yes"}),
        update_mask=["qualification.need", "qualification.budget"]))
    rep.LogActivity(opportunity_pb2.LogActivityRequest(lead_id=opportunity.lead_id,
                                                       type=opportunity_pb2.ACTIVITY_TYPE_CALL))

    stale = rep.error("MoveOpportunityStage", move(opportunity.opportunity_id, "discovery", expected_version=1))
    # Without an expected version, two people moving at once both land, one after the other.
    rep.MoveOpportunityStage(move(opportunity.opportunity_id, "discovery"))
    back = manager.MoveOpportunityStage(move(opportunity.opportunity_id, "qualification")).opportunity

    assert stale.code == StatusCode.FAILED_PRECONDITION and "changed meanwhile" in stale.message
    assert [(h.from_stage, h.to_stage) for h in back.history] == [
        ("", "qualification"), ("qualification", "discovery"), ("discovery", "qualification")]
    assert back.version == 4


def test_closing_lost_needs_a_known_reason_and_a_reopen_returns_to_the_stage(run_service, infra, tokens, tap,
                                                                              publish):
    service = start_isolated(run_service, infra, OpportunityService)
    rep = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["rep"])
    manager = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["manager"])
    outsider = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["outsider_rep"])
    outcomes = tap("opportunity", "opportunity_won", "opportunity_lost")
    opportunity = converted(rep, publish)

    no_reason = rep.error("CloseOpportunity", opportunity_pb2.CloseOpportunityRequest(
        opportunity_id=opportunity.opportunity_id, won=False, lost_reason="bad vibes"))
    won_too_early = rep.error("CloseOpportunity", opportunity_pb2.CloseOpportunityRequest(
        opportunity_id=opportunity.opportunity_id, won=True))
    denied = outsider.error("CloseOpportunity", opportunity_pb2.CloseOpportunityRequest(
        opportunity_id=opportunity.opportunity_id, won=False, lost_reason="price"))
    lost = rep.CloseOpportunity(opportunity_pb2.CloseOpportunityRequest(
        opportunity_id=opportunity.opportunity_id, won=False, lost_reason="price",
        note="went with a cheaper tool")).opportunity
    after_close = rep.error("MoveOpportunityStage", move(opportunity.opportunity_id, "discovery"))
    rep_reopen = rep.error("ReopenOpportunity", opportunity_pb2.ReopenOpportunityRequest(
        opportunity_id=opportunity.opportunity_id, reason="they called back"))
    reopened = manager.ReopenOpportunity(opportunity_pb2.ReopenOpportunityRequest(
        opportunity_id=opportunity.opportunity_id, reason="they called back")).opportunity

    assert set(violations_of(no_reason.status)) == {"lost_reason"}
    assert won_too_early.code == StatusCode.FAILED_PRECONDITION and "no call logged" in won_too_early.message
    assert denied.code == StatusCode.PERMISSION_DENIED
    assert (lost.status, lost.stage_id, lost.lost_reason, lost.probability, lost.forecast_category) == \
        (opportunity_pb2.OPPORTUNITY_STATUS_LOST, "closed_lost", "price", 0, "closed")
    assert "reopen it first" in after_close.message and rep_reopen.code == StatusCode.PERMISSION_DENIED
    assert (reopened.status, reopened.stage_id, reopened.lost_reason) == \
        (opportunity_pb2.OPPORTUNITY_STATUS_OPEN, "qualification", "")
    assert [h.to_stage for h in reopened.history] == ["qualification", "closed_lost", "qualification"]
    [event] = outcomes.collect(1)
    assert (event["event_type"], event["lead_id"], event["lost_reason"]) == \
        ("opportunity_lost", opportunity.lead_id, "price")


def test_listing_follows_who_is_asking(run_service, infra, tokens, publish):
    service = start_isolated(run_service, infra, OpportunityService)
    rep = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["rep"])
    admin = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["admin"])
    mine = converted(rep, publish)
    theirs = admin.ConvertLead(conversion(assign(publish, rep_id="rep.far", team="team-b"))).opportunity

    seen_by_rep = rep.ListOpportunities(opportunity_pb2.ListOpportunitiesRequest(owner_id="rep.far")).opportunities
    seen_by_admin = admin.ListOpportunities(opportunity_pb2.ListOpportunitiesRequest(team="team-b")).opportunities
    closing = admin.ListOpportunities(opportunity_pb2.ListOpportunitiesRequest(close_before="2099-12-31"))
    bad = admin.error("ListOpportunities", opportunity_pb2.ListOpportunitiesRequest(close_before="soon"))

    assert [o.opportunity_id for o in seen_by_rep] == [mine.opportunity_id]
    assert [o.opportunity_id for o in seen_by_admin] == [theirs.opportunity_id]
    assert len(closing.opportunities) == 2 and set(violations_of(bad.status)) == {"close_before"}


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n" + bytes(range(256)) * 5000 + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def upload(opportunity_id: str, content: bytes, content_type="application/pdf", filename="proposal.pdf"):
    header = opportunity_pb2.AttachmentHeader(opportunity_id=opportunity_id, filename=filename,
                                              content_type=content_type)
    chunks = [content[i:i + 300_000] for i in range(0, len(content), 300_000)]
    return iter([opportunity_pb2.UploadAttachmentRequest(header=header),
                 *(opportunity_pb2.UploadAttachmentRequest(chunk=c) for c in chunks)])


def test_attachments_round_trip_are_checked_and_count_for_exit_criteria(run_service, infra, tokens, publish):
    service = start_isolated(run_service, infra, OpportunityService, ATTACHMENT_MAX_BYTES=2_000_000)
    rep = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["rep"])
    outsider = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["outsider_rep"])
    lead_id = assign(publish)
    opportunity = rep.ConvertLead(conversion(lead_id)).opportunity
    rep.UpdateOpportunity(opportunity_pb2.UpdateOpportunityRequest(
        opportunity_id=opportunity.opportunity_id, opportunity=opportunity_pb2.Opportunity(
            qualification={"need": "y", "budget": "y", "decision_maker": "CFO"}),
        update_mask=["qualification.need", "qualification.budget", "qualification.decision_maker"]))
    for kind in (opportunity_pb2.ACTIVITY_TYPE_CALL, opportunity_pb2.ACTIVITY_TYPE_MEETING):
        rep.LogActivity(opportunity_pb2.LogActivityRequest(lead_id=lead_id, type=kind))
    for stage in ("discovery", "proposal"):
        rep.MoveOpportunityStage(move(opportunity.opportunity_id, stage))
    needs_file = rep.error("MoveOpportunityStage", move(opportunity.opportunity_id, "negotiation"))

    stored = rep.UploadAttachment(upload(opportunity.opportunity_id, PDF)).attachment
    received = list(rep.DownloadAttachment(opportunity_pb2.DownloadAttachmentRequest(
        attachment_id=stored.attachment_id)))
    moved = rep.MoveOpportunityStage(move(opportunity.opportunity_id, "negotiation")).opportunity
    disguised = rep.error("UploadAttachment", upload(opportunity.opportunity_id, PNG))
    not_accepted = rep.error("UploadAttachment", upload(opportunity.opportunity_id, b"MZ\x90\x00",
                                                        content_type="application/x-msdownload",
                                                        filename="../setup.exe"))
    too_big = rep.error("UploadAttachment", upload(opportunity.opportunity_id, PDF * 2))
    denied = outsider.error("UploadAttachment", upload(opportunity.opportunity_id, PDF))
    hidden = outsider.error("ListAttachments", opportunity_pb2.ListAttachmentsRequest(
        opportunity_id=opportunity.opportunity_id))

    assert "proposal: 1 more attachment(s) needed" in needs_file.message
    assert (stored.filename, stored.content_type, stored.size, stored.uploaded_by) == \
        ("proposal.pdf", "application/pdf", len(PDF), "rep.one")
    assert received[0].attachment == stored and b"".join(r.chunk for r in received[1:]) == PDF
    assert len(received) > 2  # streamed in chunks, not one message
    assert moved.stage_id == "negotiation"
    assert set(violations_of(disguised.status)) == {"file"} and "image/png" in disguised.message
    assert set(violations_of(not_accepted.status)) == {"header.filename", "header.content_type"}
    assert set(violations_of(too_big.status)) == {"chunk"}
    assert denied.code == hidden.code == StatusCode.PERMISSION_DENIED
    listed = rep.ListAttachments(opportunity_pb2.ListAttachmentsRequest(
        opportunity_id=opportunity.opportunity_id)).attachments
    assert [a.attachment_id for a in listed] == [stored.attachment_id]


def test_sales_verdicts_need_their_answers_and_are_announced(run_service, infra, tokens, tap, publish):
    service = start_isolated(run_service, infra, OpportunityService)
    rep = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["rep"])
    verdicts = tap("opportunity", "lead_sales_qualified", "lead_sales_disqualified", "lead_recycled")
    good, bad, later = assign(publish), assign(publish), assign(publish)
    bant = {"budget": "EUR 50k approved", "authority": "CFO signs", "need": "200 seats", "timeline": "Q1"}

    half = rep.error("QualifyLead", opportunity_pb2.QualifyLeadRequest(
        lead_id=good, outcome=opportunity_pb2.QUALIFICATION_OUTCOME_QUALIFIED, answers={"budget": "yes",
                                                                                         "colour": "red"}))
    no_reason = rep.error("QualifyLead", opportunity_pb2.QualifyLeadRequest(
        lead_id=bad, outcome=opportunity_pb2.QUALIFICATION_OUTCOME_DISQUALIFIED))
    past = rep.error("QualifyLead", opportunity_pb2.QualifyLeadRequest(
        lead_id=later, outcome=opportunity_pb2.QUALIFICATION_OUTCOME_RECYCLE, recycle_on="2020-01-01"))
    rep.QualifyLead(opportunity_pb2.QualifyLeadRequest(
        lead_id=good, outcome=opportunity_pb2.QUALIFICATION_OUTCOME_QUALIFIED, answers=bant))
    rep.QualifyLead(opportunity_pb2.QualifyLeadRequest(
        lead_id=bad, outcome=opportunity_pb2.QUALIFICATION_OUTCOME_DISQUALIFIED, reason="a student project"))
    rep.QualifyLead(opportunity_pb2.QualifyLeadRequest(
        lead_id=later, outcome=opportunity_pb2.QUALIFICATION_OUTCOME_RECYCLE, recycle_on="2099-06-01"))

    assert set(violations_of(half.status)) == {"answers[colour]", "answers[authority]", "answers[need]",
                                               "answers[timeline]"}
    assert set(violations_of(no_reason.status)) == {"reason"} and set(violations_of(past.status)) == {"recycle_on"}
    announced = {e["lead_id"]: e for e in verdicts.collect(3)}
    assert announced[good]["event_type"] == "lead_sales_qualified" and announced[good]["answers"] == bant
    assert (announced[bad]["event_type"], announced[bad]["reason"]) == ("lead_sales_disqualified",
                                                                        "a student project")
    assert (announced[later]["event_type"], announced[later]["recycle_on"]) == ("lead_recycled", "2099-06-01")
    assert LeadOwnershipDocument.objects(id=good).get().qualification["by"] == "rep.one"

    # Qualify once: the answers become the deal's qualification facts, so leaving qualification
    # (which needs need, budget and a call) takes only the call, not the answers again.
    deal = rep.ConvertLead(conversion(good)).opportunity
    assert dict(deal.qualification) == bant
    rep.LogActivity(opportunity_pb2.LogActivityRequest(lead_id=good, type=opportunity_pb2.ACTIVITY_TYPE_CALL,
                                                       subject="discovery call"))
    moved = rep.MoveOpportunityStage(move(deal.opportunity_id, "discovery")).opportunity
    assert moved.stage_id == "discovery"
    # A lead converted without a qualified verdict carries no answers.
    assert dict(rep.ConvertLead(conversion(bad)).opportunity.qualification) == {}


def test_collaborators_see_the_opportunity_and_mentions_are_announced(run_service, infra, tokens, tap, publish):
    service = start_isolated(run_service, infra, OpportunityService)
    rep = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["rep"])
    colleague = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["outsider_rep"])
    logged = tap("opportunity", "activity_logged")
    opportunity = converted(rep, publish)

    before = colleague.error("GetOpportunity", opportunity_pb2.GetOpportunityRequest(
        opportunity_id=opportunity.opportunity_id))
    bad_role = rep.error("AddCollaborator", opportunity_pb2.AddCollaboratorRequest(
        opportunity_id=opportunity.opportunity_id, user_id="rep.far", role="cheerleader"))
    added = rep.AddCollaborator(opportunity_pb2.AddCollaboratorRequest(
        opportunity_id=opportunity.opportunity_id, user_id="rep.far", role="presales")).opportunity
    twice = rep.error("AddCollaborator", opportunity_pb2.AddCollaboratorRequest(
        opportunity_id=opportunity.opportunity_id, user_id="rep.far", role="presales"))
    seen = colleague.GetOpportunity(opportunity_pb2.GetOpportunityRequest(
        opportunity_id=opportunity.opportunity_id)).opportunity
    listed = colleague.ListOpportunities(opportunity_pb2.ListOpportunitiesRequest()).opportunities
    activity = rep.LogActivity(opportunity_pb2.LogActivityRequest(
        lead_id=opportunity.lead_id, type=opportunity_pb2.ACTIVITY_TYPE_MEETING,
        body="Demo went well; @rep.far please prepare the security answers (cc max.keller@acme.de)",
        mentions=["manager.wang"], participants=["Max Keller", "rep.far"], next_step="send the proposal")).activity

    assert before.code == StatusCode.PERMISSION_DENIED and set(violations_of(bad_role.status)) == {"role"}
    assert [(c.user_id, c.role, c.added_by) for c in added.collaborators] == [("rep.far", "presales", "rep.one")]
    assert twice.code == StatusCode.FAILED_PRECONDITION
    assert seen.opportunity_id == opportunity.opportunity_id
    assert [o.opportunity_id for o in listed] == [opportunity.opportunity_id]
    assert list(activity.mentions) == ["manager.wang", "rep.far"] and activity.next_step == "send the proposal"
    event = logged.wait_for(lambda e: e["activity_id"] == activity.activity_id)[0]
    assert event["mentions"] == ["manager.wang", "rep.far"] and event["logged_by"] == "rep.one"
