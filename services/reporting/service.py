"""Reporting service: projections of every event, answering the manager's questions."""
from leadflow.reporting.v1 import reporting_pb2, reporting_pb2_grpc

from services.common.auth import Role
from services.common.messaging import event_handler
from services.common.rpc import LeadflowGrpc
from services.common.service_base import LeadflowService
from services.reporting import domain
from services.reporting.dependencies import ReportingStore

reporting_rpc = LeadflowGrpc.implementing(reporting_pb2_grpc.ReportingServiceStub)
_STAGE_TO_PROTO = {stage: getattr(reporting_pb2, f"FUNNEL_STAGE_{stage.name}") for stage in domain.Stage}


def _projecting(source_service: str, event_type: str):
    """The lead's progress moments the event fixes, and for an opportunity event its snapshot."""
    moments = domain.PROJECTED_MOMENTS.get((source_service, event_type))
    snapshot = event_type in domain.OPPORTUNITY_SNAPSHOT_EVENTS

    @event_handler(source_service, event_type)
    def handle(self, event):
        if moments and event.get("lead_id"):
            self.progress.apply(event, moments)
        if snapshot:
            self.progress.project_opportunity(event)
    return handle


def _recording_config_changes(source_service: str):
    """The history of rules-as-data changes (models, policies, pipelines) of one service."""
    @event_handler(source_service, "config_changed")
    def handle(self, event):
        self.progress.record_config_change(event, source_service)
    return handle


class ReportingService(LeadflowService):
    name = "reporting"
    progress = ReportingStore()

    handle_lead_captured = _projecting("capture", "lead_captured")
    handle_lead_merged = _projecting("capture", "lead_merged")
    handle_lead_unmerged = _projecting("capture", "lead_unmerged")
    handle_lead_activity_recorded = _projecting("capture", "lead_activity_recorded")
    handle_lead_scored = _projecting("scoring", "lead_scored")
    handle_lead_qualified = _projecting("scoring", "lead_qualified")
    handle_lead_disqualified = _projecting("scoring", "lead_disqualified")
    handle_lead_assigned = _projecting("routing", "lead_assigned")
    handle_lead_contacted = _projecting("opportunity", "lead_contacted")
    handle_lead_converted = _projecting("opportunity", "lead_converted")
    handle_activity_logged = _projecting("opportunity", "activity_logged")
    handle_lead_sales_qualified = _projecting("opportunity", "lead_sales_qualified")
    handle_lead_sales_disqualified = _projecting("opportunity", "lead_sales_disqualified")
    handle_lead_recycled = _projecting("opportunity", "lead_recycled")
    handle_opportunity_stage_changed = _projecting("opportunity", "opportunity_stage_changed")
    handle_opportunity_won = _projecting("opportunity", "opportunity_won")
    handle_opportunity_lost = _projecting("opportunity", "opportunity_lost")
    handle_opportunity_updated = _projecting("opportunity", "opportunity_updated")
    handle_opportunity_imported = _projecting("opportunity", "opportunity_imported")
    handle_task_created = _projecting("routing", "task_created")
    handle_lead_reassigned = _projecting("routing", "lead_reassigned")
    handle_sla_warning = _projecting("routing", "sla_warning")
    handle_sla_breached = _projecting("routing", "sla_breached")
    handle_task_completed = _projecting("routing", "task_completed")

    handle_scoring_config_changed = _recording_config_changes("scoring")
    handle_routing_config_changed = _recording_config_changes("routing")
    handle_opportunity_config_changed = _recording_config_changes("opportunity")

    @reporting_rpc(roles={Role.ADMIN, Role.MANAGER, Role.INTEGRATION})
    def GetFunnel(self, request, context):
        steps = domain.funnel(self.progress.stage_counts(request.source.strip().lower()))
        return reporting_pb2.GetFunnelResponse(steps=[
            reporting_pb2.FunnelStep(stage=_STAGE_TO_PROTO[s.stage], leads=s.leads,
                                     conversion_from_previous=s.conversion_from_previous) for s in steps])
