"""Opportunity service: the collaboration record, starting with activities and first contact."""
import uuid
from datetime import date

from google.protobuf.json_format import MessageToDict
from leadflow.opportunity.v1 import opportunity_pb2, opportunity_pb2_grpc

from services.common import metrics
from services.common.auth import Role
from services.common.errors import FieldViolation, InvalidArgument
from services.common.events import utcnow
from services.common.mappers import from_timestamp, next_page_token, page_window
from services.common.messaging import event_handler
from services.common.rpc import LeadflowGrpc
from services.common.service_base import LeadflowService
from services.opportunity import domain, mappers
from services.opportunity.dependencies import OpportunityStore
from services.opportunity.conversion import AccountInput, ContactInput, OpportunityInput, validate_conversion
from services.opportunity.pipeline import compile_pipeline

opportunity_rpc = LeadflowGrpc.implementing(opportunity_pb2_grpc.OpportunityServiceStub)
SALES = {Role.ADMIN, Role.MANAGER, Role.REP}


class OpportunityService(LeadflowService):
    name = "opportunity"
    activities = OpportunityStore()

    @event_handler("routing", "lead_assigned")
    def handle_lead_assigned(self, event):
        return self.activities.record_assignment_once(event, "handle_lead_assigned")

    @event_handler("routing", "lead_reassigned")
    def handle_lead_reassigned(self, event):
        return self.activities.record_assignment_once(event, "handle_lead_reassigned")

    @opportunity_rpc(roles=SALES)
    def LogActivity(self, request, context):
        now = utcnow()
        activity_type = mappers.ACTIVITY_TYPE_FROM_PROTO.get(request.type)
        occurred_at = from_timestamp(request.occurred_at)
        domain.validate_activity(request.lead_id, activity_type, request.subject, request.body, request.outcome,
                                 occurred_at, now)
        ownership = self.activities.ownership(request.lead_id)
        domain.ensure_may_work_on(self.caller, ownership)
        activity = domain.Activity(
            activity_id=str(uuid.uuid4()), lead_id=request.lead_id, type=activity_type, subject=request.subject,
            body=request.body, outcome=request.outcome, logged_by=self.caller.id, occurred_at=occurred_at or now,
            logged_at=now)
        first_contact = self.activities.log(activity, ownership)
        if first_contact:
            metrics.LEADS_CONTACTED.inc()
        return opportunity_pb2.LogActivityResponse(activity=mappers.activity_to_proto(activity),
                                                   first_contact=first_contact)

    @opportunity_rpc(roles=SALES | {Role.INTEGRATION})
    def ListActivities(self, request, context):
        ownership = self.activities.ownership(request.lead_id)
        domain.ensure_may_work_on(self.caller, ownership)
        offset, limit = page_window(request.page)
        activities = self.activities.list(request.lead_id, offset, limit)
        return opportunity_pb2.ListActivitiesResponse(
            activities=[mappers.activity_to_proto(a) for a in activities],
            page={"next_page_token": next_page_token(offset, limit, len(activities))})

    # ---- pipelines ---------------------------------------------------------------------------------

    @opportunity_rpc(roles={Role.ADMIN})
    def PutPipeline(self, request, context):
        definition = MessageToDict(request.definition)
        pipeline = compile_pipeline(definition)  # InvalidArgument names each bad path
        if request.validate_only:
            return opportunity_pb2.PutPipelineResponse(pipeline=mappers.pipeline_to_proto(pipeline, definition))
        document = self.activities.put_pipeline(definition, self.caller.id)
        return opportunity_pb2.PutPipelineResponse(pipeline=self._pipeline_proto(document, live=True))

    def _pipeline_proto(self, document, live: bool):
        return mappers.pipeline_to_proto(compile_pipeline(document.definition), document.definition,
                                         document.version, document.created_at, document.created_by, live)

    @opportunity_rpc
    def GetPipeline(self, request, context):
        document = self.activities.pipeline_version(request.pipeline_id, request.version)
        live = self.activities.pipeline_version(request.pipeline_id) if request.version else document
        return opportunity_pb2.GetPipelineResponse(pipeline=self._pipeline_proto(
            document, live=document.version == live.version))

    @opportunity_rpc
    def ListPipelines(self, request, context):
        offset, limit = page_window(request.page)
        documents = self.activities.live_pipelines(offset, limit)
        return opportunity_pb2.ListPipelinesResponse(
            pipelines=[self._pipeline_proto(d, live=True) for d in documents],
            page={"next_page_token": next_page_token(offset, limit, len(documents))})

    # ---- conversion ---------------------------------------------------------------------------------

    @opportunity_rpc(roles=SALES)
    def ConvertLead(self, request, context):
        now = utcnow()
        draft = request.opportunity
        close_date = None
        if draft.close_date:
            try:
                close_date = date.fromisoformat(draft.close_date)
            except ValueError:
                raise InvalidArgument([FieldViolation("opportunity.close_date",
                                                      "must be a date, YYYY-MM-DD")]) from None
        account, contact = request.account, request.contact
        conversion = validate_conversion(
            AccountInput(account.name, account.domain, account.industry, account.country),
            ContactInput(contact.first_name, contact.last_name, contact.email, contact.phone, contact.title),
            OpportunityInput(draft.name, draft.pipeline_id, draft.amount, draft.currency, close_date, draft.owner_id),
            now.date())
        ownership = self.activities.ownership(request.lead_id)
        domain.ensure_may_work_on(self.caller, ownership)
        opportunity, account_doc, contact_doc, account_created, contact_created, already = \
            self.activities.convert(conversion, ownership, self.caller.id, now)
        if not already:
            metrics.LEADS_CONVERTED.inc()
        return opportunity_pb2.ConvertLeadResponse(
            opportunity=self._opportunity_proto(opportunity), account=mappers.account_to_proto(account_doc),
            contact=mappers.contact_to_proto(contact_doc), account_created=account_created,
            contact_created=contact_created, already_converted=already)

    def _opportunity_proto(self, document):
        stored = self.activities.pipeline_version(document.pipeline_id, document.pipeline_version) \
            if document.pipeline_version else self.activities.pipeline_version(document.pipeline_id)
        return mappers.opportunity_to_proto(document, compile_pipeline(stored.definition).stage(document.stage_id))

    @opportunity_rpc(roles=SALES | {Role.INTEGRATION})
    def GetOpportunity(self, request, context):
        document = self.activities.opportunity(request.opportunity_id)
        domain.ensure_may_see_opportunity(self.caller, document.owner_id, document.team)
        return opportunity_pb2.GetOpportunityResponse(opportunity=self._opportunity_proto(document))
