"""Pipelines as versioned data through the real service: validated by path, stored as versions,
live at once, announced to reporting; the built-in new-business pipeline until a company stores one."""
from google.protobuf import struct_pb2
from grpc import StatusCode
from leadflow.opportunity.v1 import opportunity_pb2, opportunity_pb2_grpc

from services.opportunity.models import PipelineVersionDocument
from services.opportunity.service import OpportunityService
from tests.integration.conftest import start_isolated
from tests.support import violations_of

RENEWAL = {
    "id": "renewal", "name": "Renewal", "allow_skip": True,
    "stages": [{"id": "health-check", "probability": 60, "forecast": "best_case",
                "exit": {"activities": ["meeting"], "fields": ["amount"]}},
               {"id": "quote", "probability": 85, "forecast": "commit", "exit": {"attachments": 1}}],
    "lost_reasons": ["churned", "downsized"],
}


def struct(value: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


def test_pipelines_are_validated_by_path_versioned_and_listed(run_service, infra, tokens, tap):
    service = start_isolated(run_service, infra, OpportunityService)
    admin = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["admin"])
    rep = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["rep"])
    announced = tap("opportunity", "config_changed")

    builtin = rep.GetPipeline(opportunity_pb2.GetPipelineRequest(pipeline_id="new-business")).pipeline
    bad = admin.error("PutPipeline", opportunity_pb2.PutPipelineRequest(definition=struct(
        {**RENEWAL, "stages": [{"id": "quote", "probability": 85, "exit": {"activities": ["fax"]}}]})))
    denied = rep.error("PutPipeline", opportunity_pb2.PutPipelineRequest(definition=struct(RENEWAL)))
    checked = admin.PutPipeline(opportunity_pb2.PutPipelineRequest(definition=struct(RENEWAL),
                                                                   validate_only=True)).pipeline

    assert (builtin.version, builtin.live, [s.stage_id for s in builtin.stages]) == \
        (0, True, ["qualification", "discovery", "proposal", "negotiation"])
    assert list(builtin.stages[1].exit_activities) == ["meeting"]
    assert bad.code == StatusCode.INVALID_ARGUMENT
    assert set(violations_of(bad.status)) == {"stages[0].exit.activities[0]"}
    assert denied.code == StatusCode.PERMISSION_DENIED
    assert checked.version == 0 and PipelineVersionDocument.objects.count() == 0

    first = admin.PutPipeline(opportunity_pb2.PutPipelineRequest(definition=struct(RENEWAL))).pipeline
    second = admin.PutPipeline(opportunity_pb2.PutPipelineRequest(definition=struct(
        {**RENEWAL, "name": "Renewals and upsell"}))).pipeline
    listed = admin.ListPipelines(opportunity_pb2.ListPipelinesRequest()).pipelines
    old = admin.GetPipeline(opportunity_pb2.GetPipelineRequest(pipeline_id="renewal", version=1)).pipeline
    missing = admin.error("GetPipeline", opportunity_pb2.GetPipelineRequest(pipeline_id="partner"))

    assert (first.version, second.version, second.live) == (1, 2, True)
    assert [(p.pipeline_id, p.version, p.name) for p in listed] == [
        ("new-business", 0, "New business"), ("renewal", 2, "Renewals and upsell")]
    assert (old.name, old.live, old.stages[1].exit_attachments) == ("Renewal", False, 1)
    assert list(old.lost_reasons) == ["churned", "downsized"]
    assert missing.code == StatusCode.NOT_FOUND
    assert [(e["kind"], e["version"]) for e in announced.collect(2)] == \
        [("Pipeline", "renewal@1"), ("Pipeline", "renewal@2")]
