"""Opportunity: proto <-> domain <-> document."""
from leadflow.opportunity.v1 import opportunity_pb2

from services.common.mappers import to_timestamp
from services.opportunity.domain import Activity, ActivityType, LeadOwnership
from services.opportunity.lifecycle import probability_and_forecast
from services.opportunity.models import ActivityDocument, LeadOwnershipDocument

ACTIVITY_TYPE_FROM_PROTO = {
    opportunity_pb2.ACTIVITY_TYPE_CALL: ActivityType.CALL,
    opportunity_pb2.ACTIVITY_TYPE_EMAIL: ActivityType.EMAIL,
    opportunity_pb2.ACTIVITY_TYPE_MEETING: ActivityType.MEETING,
    opportunity_pb2.ACTIVITY_TYPE_NOTE: ActivityType.NOTE,
}
_ACTIVITY_TYPE_TO_PROTO = {v: k for k, v in ACTIVITY_TYPE_FROM_PROTO.items()}
_ACTIVITY_FIELDS = ("lead_id", "subject", "body", "outcome", "logged_by", "occurred_at", "logged_at", "next_step")


def activity_to_document(activity: Activity) -> ActivityDocument:
    return ActivityDocument(id=activity.activity_id, type=activity.type.value, mentions=activity.mentions,
                            participants=activity.participants,
                            **{name: getattr(activity, name) for name in _ACTIVITY_FIELDS})


def activity_from_document(document: ActivityDocument) -> Activity:
    return Activity(activity_id=document.id, type=ActivityType(document.type), mentions=list(document.mentions or []),
                    participants=list(document.participants or []),
                    **{name: getattr(document, name) or "" if name == "next_step" else getattr(document, name)
                       for name in _ACTIVITY_FIELDS})


def activity_to_proto(activity: Activity) -> opportunity_pb2.Activity:
    return opportunity_pb2.Activity(
        activity_id=activity.activity_id, lead_id=activity.lead_id, type=_ACTIVITY_TYPE_TO_PROTO[activity.type],
        subject=activity.subject, body=activity.body, outcome=activity.outcome, logged_by=activity.logged_by,
        occurred_at=to_timestamp(activity.occurred_at), logged_at=to_timestamp(activity.logged_at),
        mentions=activity.mentions, participants=activity.participants, next_step=activity.next_step)


def ownership_from_document(document: LeadOwnershipDocument) -> LeadOwnership:
    return LeadOwnership(lead_id=document.id, rep_id=document.rep_id, team=document.team,
                         contacted_at=document.contacted_at, qualification=dict(document.qualification or {}))


def pipeline_to_proto(pipeline, definition: dict, version: int = 0, created_at=None, created_by: str = "",
                      live: bool = False) -> opportunity_pb2.Pipeline:
    """A compiled pipeline with the document it came from and that version's facts."""
    message = opportunity_pb2.Pipeline(
        pipeline_id=pipeline.pipeline_id, name=pipeline.name, version=version, created_by=created_by, live=live,
        lost_reasons=pipeline.lost_reasons, created_at=to_timestamp(created_at),
        stages=[opportunity_pb2.PipelineStage(
            stage_id=stage.stage_id, name=stage.name, probability=stage.probability,
            forecast_category=stage.forecast, exit_fields=stage.exit.fields, exit_activities=stage.exit.activities,
            exit_attachments=stage.exit.attachments) for stage in pipeline.stages])
    message.definition.update(definition)
    return message


STATUS_FROM_PROTO = {opportunity_pb2.OPPORTUNITY_STATUS_OPEN: "open", opportunity_pb2.OPPORTUNITY_STATUS_WON: "won",
                     opportunity_pb2.OPPORTUNITY_STATUS_LOST: "lost"}
_STATUS_TO_PROTO = {"open": opportunity_pb2.OPPORTUNITY_STATUS_OPEN, "won": opportunity_pb2.OPPORTUNITY_STATUS_WON,
                    "lost": opportunity_pb2.OPPORTUNITY_STATUS_LOST}


def account_to_proto(document) -> opportunity_pb2.Account:
    return opportunity_pb2.Account(account_id=document.id, name=document.name, domain=document.domain,
                                   industry=document.industry, country=document.country or "")


def contact_to_proto(document) -> opportunity_pb2.Contact:
    return opportunity_pb2.Contact(contact_id=document.id, account_id=document.account_id,
                                   first_name=document.first_name, last_name=document.last_name,
                                   email=document.email, phone=document.phone, title=document.title)


def opportunity_to_proto(document, stage) -> opportunity_pb2.Opportunity:
    """``stage``: the compiled pipeline stage the opportunity is in (None once closed)."""
    probability, forecast = probability_and_forecast(document.status, stage, document.probability_override)
    return opportunity_pb2.Opportunity(
        opportunity_id=document.id, name=document.name, lead_id=document.lead_id, account_id=document.account_id,
        contact_id=document.contact_id, pipeline_id=document.pipeline_id, pipeline_version=document.pipeline_version,
        stage_id=document.stage_id, probability=probability, forecast_category=forecast, owner_id=document.owner_id,
        team=document.team, amount=document.amount, currency=document.currency, close_date=document.close_date,
        status=_STATUS_TO_PROTO[document.status], created_at=to_timestamp(document.created_at),
        version=document.version, next_step=document.next_step, qualification=dict(document.qualification or {}),
        probability_overridden=document.probability_override is not None, lost_reason=document.lost_reason,
        close_note=document.close_note, closed_at=to_timestamp(document.closed_at),
        collaborators=[opportunity_pb2.Collaborator(user_id=c.get("user_id", ""), role=c.get("role", ""),
                                                    added_by=c.get("added_by", ""),
                                                    added_at=to_timestamp(c.get("added_at")))
                       for c in document.collaborators or []],
        history=[opportunity_pb2.StageChange(from_stage=h.get("from", ""), to_stage=h.get("to", ""),
                                             at=to_timestamp(h.get("at")), by=h.get("by", ""),
                                             reason=h.get("reason", "")) for h in document.history or []],
        product=document.product or "", account_name=document.account_name or "", office=document.office or "",
        manager_id=document.manager_id or "", external_id=document.external_id or "",
        engaged_at=to_timestamp(document.engaged_at),
        owner_history=[opportunity_pb2.OwnerChange(from_owner=h.get("from", ""), to_owner=h.get("to", ""),
                                                   at=to_timestamp(h.get("at")), by=h.get("by", ""),
                                                   reason=h.get("reason", ""))
                       for h in document.owner_history or []])


def attachment_to_proto(document) -> opportunity_pb2.Attachment:
    return opportunity_pb2.Attachment(
        attachment_id=document.id, opportunity_id=document.opportunity_id, filename=document.filename,
        content_type=document.content_type, size=document.size, sha256=document.sha256,
        uploaded_by=document.uploaded_by, uploaded_at=to_timestamp(document.uploaded_at))


def history_report_to_proto(report, table_numbers: dict, import_id: str) -> opportunity_pb2.ImportOpportunitiesResponse:
    return opportunity_pb2.ImportOpportunitiesResponse(
        rows=report.rows, imported=report.imported, unchanged=report.unchanged, rejected=report.rejected,
        rejections=[opportunity_pb2.ImportRejection(table=table_numbers[r.table], row=r.row, column=r.column,
                                                     reason=r.reason) for r in report.rejections],
        by_stage=report.by_stage, accounts_created=report.accounts_created, notes=report.notes,
        mappings=report.mappings, dry_run=report.dry_run, import_id=import_id)
