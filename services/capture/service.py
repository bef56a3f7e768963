"""Capture service: the gRPC door every lead comes through."""
import uuid

from leadflow.capture.v1 import capture_pb2, capture_pb2_grpc

from services.capture import domain, mappers
from services.capture.dependencies import CaptureStore
from services.common import metrics
from services.common.auth import Role
from services.common.events import utcnow
from services.common.rpc import LeadflowGrpc
from services.common.service_base import LeadflowService

capture_rpc = LeadflowGrpc.implementing(capture_pb2_grpc.CaptureServiceStub)
SUBMITTERS = {Role.ADMIN, Role.MANAGER, Role.INTEGRATION}


class CaptureService(LeadflowService):
    name = "capture"
    leads = CaptureStore()

    @capture_rpc(roles=SUBMITTERS)
    def SubmitLead(self, request, context):
        key = domain.validate_idempotency_key(request.idempotency_key)
        lead = domain.normalise_lead(mappers.lead_input_from_proto(request.lead), str(uuid.uuid4()), utcnow())
        submission = self.leads.submit(lead, key, captured_by=self.caller.id)
        if submission.created:
            metrics.LEADS_CAPTURED.labels(metrics.source_label(lead.source)).inc()
        elif submission.merged:
            metrics.LEADS_MERGED.inc()
        return capture_pb2.SubmitLeadResponse(lead=mappers.lead_to_proto(submission.lead),
                                              created=submission.created, merged=submission.merged)

    # Capture does not know who owns a lead, so reps read leads through the services that do.
    @capture_rpc(roles=SUBMITTERS)
    def GetLead(self, request, context):
        return capture_pb2.GetLeadResponse(lead=mappers.lead_to_proto(self.leads.get(request.lead_id)))
