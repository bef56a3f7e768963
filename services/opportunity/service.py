"""Opportunity service: the collaboration record, starting with activities and first contact."""
import tempfile
import uuid
from datetime import date

from leadflow.opportunity.v1 import opportunity_pb2, opportunity_pb2_grpc
from nameko import config

from services.common import metrics
from services.common.auth import Role
from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument, Validator
from services.common.events import utcnow
from services.common.import_progress import ImportProgressProvider, checked_import_id, tracked
from services.common.mappers import (from_timestamp, import_progress_to_proto, next_page_token, page_window,
                                     struct_to_dict, to_timestamp)
from services.common.messaging import event_handler
from services.common.rpc import LeadflowGrpc
from services.common.service_base import LeadflowService
from services.common.streams import receive_chunks, stream_header
from services.opportunity import attachments, domain, events, history_files, lifecycle, mappers
from services.opportunity.dependencies import OpportunityStore
from services.opportunity.conversion import AccountInput, ContactInput, OpportunityInput, validate_conversion
from services.opportunity.pipeline import compile_pipeline

opportunity_rpc = LeadflowGrpc.implementing(opportunity_pb2_grpc.OpportunityServiceStub)
SALES = {Role.ADMIN, Role.MANAGER, Role.REP}
VERDICTS = {opportunity_pb2.QUALIFICATION_OUTCOME_QUALIFIED: domain.Verdict.QUALIFIED,
            opportunity_pb2.QUALIFICATION_OUTCOME_DISQUALIFIED: domain.Verdict.DISQUALIFIED,
            opportunity_pb2.QUALIFICATION_OUTCOME_RECYCLE: domain.Verdict.RECYCLE}
IMPORT_TABLES = {opportunity_pb2.IMPORT_TABLE_OPPORTUNITIES: "opportunities",
                 opportunity_pb2.IMPORT_TABLE_ACCOUNTS: "accounts",
                 opportunity_pb2.IMPORT_TABLE_SALES_TEAMS: "sales_teams",
                 opportunity_pb2.IMPORT_TABLE_PRODUCTS: "products"}
SPOOL_IN_MEMORY = 1 << 20  # larger uploads spill to a temporary file
DOWNLOAD_CHUNK_BYTES = 256 * 1024


class OpportunityService(LeadflowService):
    name = "opportunity"
    activities = OpportunityStore()
    imports = ImportProgressProvider()

    @event_handler("routing", "lead_assigned")
    def handle_lead_assigned(self, events):
        """A batch of events (services.common.messaging.BatchEventHandler), one outcome each."""
        return self.activities.record_assignment_once(events, "handle_lead_assigned")

    @event_handler("routing", "lead_reassigned")
    def handle_lead_reassigned(self, events):
        return self.activities.record_assignment_once(events, "handle_lead_reassigned")

    @opportunity_rpc(roles=SALES)
    def LogActivity(self, request, context):
        now = utcnow()
        activity_type = mappers.ACTIVITY_TYPE_FROM_PROTO.get(request.type)
        occurred_at = from_timestamp(request.occurred_at)
        domain.validate_activity(request.lead_id, activity_type, request.subject, request.body, request.outcome,
                                 occurred_at, now)
        mentions = domain.mentions_of(request.body, list(request.mentions))
        participants = domain.validate_participants(list(request.participants), request.next_step)
        ownership = self.activities.ownership(request.lead_id)
        domain.ensure_may_work_on(self.caller, ownership)
        activity = domain.Activity(
            activity_id=str(uuid.uuid4()), lead_id=request.lead_id, type=activity_type, subject=request.subject,
            body=request.body, outcome=request.outcome, logged_by=self.caller.id, occurred_at=occurred_at or now,
            logged_at=now, mentions=mentions, participants=participants, next_step=request.next_step.strip())
        first_contact = self.activities.log(activity, ownership)
        if first_contact:
            metrics.LEADS_CONTACTED.inc()
        return opportunity_pb2.LogActivityResponse(activity=mappers.activity_to_proto(activity),
                                                   first_contact=first_contact)

    @opportunity_rpc(roles=SALES | {Role.INTEGRATION})
    def ListActivities(self, request, context):
        if request.opportunity_id and request.lead_id:
            raise InvalidArgument([FieldViolation("opportunity_id", "give a lead_id or an opportunity_id, not both")])
        if request.opportunity_id:
            # The opportunity's record is its lead's: whoever may see the opportunity sees it.
            lead_id = self._visible_opportunity(request.opportunity_id).lead_id
        else:
            lead_id = request.lead_id
            domain.ensure_may_work_on(self.caller, self.activities.ownership(lead_id))
        offset, limit = page_window(request.page)
        activities = self.activities.list(lead_id, offset, limit) if lead_id else []
        return opportunity_pb2.ListActivitiesResponse(
            activities=[mappers.activity_to_proto(a) for a in activities],
            page={"next_page_token": next_page_token(offset, limit, len(activities))})

    # ---- pipelines ---------------------------------------------------------------------------------

    @opportunity_rpc(roles={Role.ADMIN})
    def PutPipeline(self, request, context):
        definition = struct_to_dict(request.definition)
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
            OpportunityInput(draft.name, draft.pipeline_id, draft.amount, draft.currency, close_date, draft.owner_id,
                             draft.team),
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

    def _pipeline_of(self, document):
        """The pipeline version the opportunity follows (its version is pinned at conversion)."""
        stored = self.activities.pipeline_version(document.pipeline_id, document.pipeline_version) \
            if document.pipeline_version else self.activities.pipeline_version(document.pipeline_id)
        return compile_pipeline(stored.definition)

    def _opportunity_proto(self, document):
        return mappers.opportunity_to_proto(document, self._pipeline_of(document).stage(document.stage_id))

    def _facts(self, document):
        """What the exit criteria see: the fields, the lead's logged activity kinds, the files."""
        return lifecycle.facts_of(document, self.activities.activity_kinds(document.lead_id),
                                  self.activities.attachment_count(document.id))

    def _changed(self, opportunity_id: str, apply):
        """Check the caller may change it, then apply under optimistic versioning."""
        self._visible_opportunity(opportunity_id)
        return self._opportunity_proto(self.activities.change(opportunity_id, apply, self._pipeline_of))

    @opportunity_rpc(roles=SALES | {Role.INTEGRATION})
    def GetOpportunity(self, request, context):
        document = self._visible_opportunity(request.opportunity_id)
        return opportunity_pb2.GetOpportunityResponse(opportunity=self._opportunity_proto(document))

    @opportunity_rpc(roles=SALES)
    def UpdateOpportunity(self, request, context):
        given = request.opportunity
        changes = lifecycle.validate_changes(
            list(request.update_mask),
            {"name": given.name, "amount": given.amount, "currency": given.currency, "close_date": given.close_date,
             "next_step": given.next_step, "qualification": dict(given.qualification)},
            request.probability_override, utcnow().date())

        def apply(document):
            lifecycle.ensure_version(document, request.expected_version)
            lifecycle.ensure_open(document)
            for name, value in changes.fields.items():
                setattr(document, name, value)
            document.qualification = {**(document.qualification or {}), **changes.qualification}
            document.qualification = {k: v for k, v in document.qualification.items() if v}
            return [events.updated(document, sorted(request.update_mask))]
        return opportunity_pb2.UpdateOpportunityResponse(opportunity=self._changed(request.opportunity_id, apply))

    @opportunity_rpc(roles=SALES)
    def MoveOpportunityStage(self, request, context):
        now, by = utcnow(), self.caller.id

        def apply(document):
            lifecycle.ensure_version(document, request.expected_version)
            lifecycle.ensure_open(document)
            pipeline = self._pipeline_of(document)
            if pipeline.stage(request.stage_id) is None:
                raise InvalidArgument([FieldViolation("stage_id", f"no open stage {request.stage_id!r} in pipeline "
                                                                  f"{pipeline.pipeline_id}; close it to win or lose")])
            lifecycle.blocked_move(pipeline, document, request.stage_id, self._facts(document))
            before = document.stage_id
            document.stage_id = request.stage_id
            document.history = [*document.history, {"from": before, "to": request.stage_id, "at": now, "by": by}]
            return [events.stage_changed(document, before, now, by)]
        moved = self._changed(request.opportunity_id, apply)
        return opportunity_pb2.MoveOpportunityStageResponse(opportunity=moved)

    @opportunity_rpc(roles=SALES)
    def CloseOpportunity(self, request, context):
        now, by = utcnow(), self.caller.id

        def apply(document):
            lifecycle.ensure_version(document, request.expected_version)
            lifecycle.ensure_open(document)
            pipeline = self._pipeline_of(document)
            target = lifecycle.validate_close(pipeline, request.won, request.lost_reason, request.note)
            lifecycle.blocked_move(pipeline, document, target, self._facts(document))
            before = document.stage_id
            document.closed_from, document.stage_id = before, target
            document.status = "won" if request.won else "lost"
            document.lost_reason = "" if request.won else request.lost_reason
            document.close_note, document.closed_at = request.note.strip(), now
            document.history = [*document.history, {"from": before, "to": target, "at": now, "by": by,
                                                    "reason": document.lost_reason or request.note.strip()}]
            return [events.stage_changed(document, before, now, by), events.closed(document)]
        closed = self._changed(request.opportunity_id, apply)
        (metrics.OPPORTUNITIES_WON if request.won else metrics.OPPORTUNITIES_LOST).inc()
        return opportunity_pb2.CloseOpportunityResponse(opportunity=closed)

    @opportunity_rpc(roles={Role.ADMIN, Role.MANAGER})
    def ReopenOpportunity(self, request, context):
        check = Validator()
        if check.required(request.reason.strip(), "reason"):
            check.max_length(request.reason, lifecycle.MAX_TEXT, "reason")
        check.raise_if_invalid()
        now, by = utcnow(), self.caller.id

        def apply(document):
            if document.status == "open":
                raise FailedPrecondition(f"opportunity {document.id} is open already")
            before = document.stage_id
            document.stage_id, document.status = document.closed_from, "open"
            document.lost_reason, document.close_note, document.closed_at = "", "", None
            document.history = [*document.history, {"from": before, "to": document.stage_id, "at": now, "by": by,
                                                    "reason": request.reason.strip()}]
            return [events.stage_changed(document, before, now, by)]
        return opportunity_pb2.ReopenOpportunityResponse(opportunity=self._changed(request.opportunity_id, apply))

    @opportunity_rpc(roles=SALES | {Role.INTEGRATION})
    def ListOpportunities(self, request, context):
        filters, works_on = {}, ""
        if request.close_before:
            try:
                date.fromisoformat(request.close_before)
            except ValueError:
                raise InvalidArgument([FieldViolation("close_before", "must be a date, YYYY-MM-DD")]) from None
            filters["close_date__ne"] = ""
        owner, team = request.owner_id, request.team
        if self.caller.role == Role.REP:
            owner, works_on = "", self.caller.id  # their own and those they collaborate on
        elif self.caller.role == Role.MANAGER:
            team = self.caller.team
        for name, value in (("owner_id", owner), ("team", team), ("pipeline_id", request.pipeline_id),
                            ("stage_id", request.stage_id), ("status", mappers.STATUS_FROM_PROTO.get(request.status)),
                            ("close_date__lte", request.close_before)):
            if value:
                filters[name] = value
        offset, limit = page_window(request.page)
        documents = self.activities.list_opportunities(filters, offset, limit, works_on)
        return opportunity_pb2.ListOpportunitiesResponse(
            opportunities=[self._opportunity_proto(d) for d in documents],
            page={"next_page_token": next_page_token(offset, limit, len(documents))})

    # ---- attachments ------------------------------------------------------------------------------

    def _visible_opportunity(self, opportunity_id: str):
        document = self.activities.opportunity(opportunity_id)
        domain.ensure_may_see_opportunity(self.caller, document.owner_id, document.team,
                                          document.collaborator_ids or ())
        return document

    @opportunity_rpc(roles=SALES)
    def UploadAttachment(self, request, context):
        header, chunks = stream_header(request)
        filename, content_type = attachments.validate_header(header.filename, header.content_type)
        opportunity = self._visible_opportunity(header.opportunity_id)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            size = receive_chunks(chunks, spool, config["ATTACHMENT_MAX_BYTES"])
            spool.seek(0)
            attachments.check_content(content_type, spool.read(attachments.SNIFF_BYTES))
            spool.seek(0)
            document = self.activities.store_attachment(opportunity.id, filename, content_type, spool, size,
                                                        self.caller.id, utcnow())
        return opportunity_pb2.UploadAttachmentResponse(attachment=mappers.attachment_to_proto(document))

    @opportunity_rpc(roles=SALES | {Role.INTEGRATION})
    def DownloadAttachment(self, request, context):
        document = self.activities.attachment(request.attachment_id)
        self._visible_opportunity(document.opportunity_id)  # checked before the first byte is sent
        return self._stream(document)

    def _stream(self, document):
        yield opportunity_pb2.DownloadAttachmentResponse(attachment=mappers.attachment_to_proto(document))
        for block in self.activities.attachment_chunks(document, DOWNLOAD_CHUNK_BYTES):
            yield opportunity_pb2.DownloadAttachmentResponse(chunk=block)

    @opportunity_rpc(roles=SALES | {Role.INTEGRATION})
    def ListAttachments(self, request, context):
        self._visible_opportunity(request.opportunity_id)
        offset, limit = page_window(request.page)
        documents = self.activities.attachments(request.opportunity_id, offset, limit)
        return opportunity_pb2.ListAttachmentsResponse(
            attachments=[mappers.attachment_to_proto(d) for d in documents],
            page={"next_page_token": next_page_token(offset, limit, len(documents))})

    # ---- qualification and collaboration ---------------------------------------------------------------

    @opportunity_rpc(roles=SALES)
    def QualifyLead(self, request, context):
        now = utcnow()
        framework = tuple(k.strip() for k in config["QUALIFICATION_FRAMEWORK"].split(",") if k.strip())
        recorded = domain.validate_verdict(VERDICTS.get(request.outcome), dict(request.answers), request.reason,
                                           request.recycle_on, framework, now.date())
        ownership = self.activities.ownership(request.lead_id)
        domain.ensure_may_work_on(self.caller, ownership)
        self.activities.qualify(ownership, recorded, self.caller.id, now)
        metrics.LEADS_SALES_VERDICTS.labels(recorded["outcome"]).inc()
        return opportunity_pb2.QualifyLeadResponse(outcome=request.outcome, qualified_at=to_timestamp(now))

    @opportunity_rpc(roles=SALES)
    def AddCollaborator(self, request, context):
        domain.validate_collaborator(request.user_id, request.role)
        now, by = utcnow(), self.caller.id

        def apply(document):
            if request.user_id == document.owner_id or request.user_id in (document.collaborator_ids or []):
                raise FailedPrecondition(f"{request.user_id} works on this opportunity already")
            document.collaborators = [*document.collaborators, {"user_id": request.user_id, "role": request.role,
                                                                "added_by": by, "added_at": now}]
            document.collaborator_ids = [*(document.collaborator_ids or []), request.user_id]
            return []
        return opportunity_pb2.AddCollaboratorResponse(opportunity=self._changed(request.opportunity_id, apply))

    # ---- history --------------------------------------------------------------------------------------

    @opportunity_rpc(roles={Role.ADMIN})
    def ImportOpportunities(self, request, context):
        header, rest = stream_header(request)
        settings = history_files.settings_of(header)  # a bad header is refused before any byte is read
        import_id = checked_import_id(header.import_id, "header.import_id")
        with tracked(self.imports, import_id, self.caller.id, "opportunities file") as tracker:
            files = history_files.receive_files(rest, IMPORT_TABLES, config["IMPORT_MAX_BYTES"],
                                                received_so_far=lambda size: tracker.update(bytes_received=size))
            report = history_files.HistoryImport(self.activities, self.caller.id, tracker).run(settings, files)
        return mappers.history_report_to_proto(report, {name: number for number, name in IMPORT_TABLES.items()},
                                               import_id)

    @opportunity_rpc(roles={Role.ADMIN})
    def GetImportProgress(self, request, context):
        return opportunity_pb2.GetImportProgressResponse(
            progress=import_progress_to_proto(self.imports.get(request.import_id, self.caller)))
