"""The public gRPC API refuses what it must, with the status and details a client can act on,
and stores nothing when it refuses."""
import grpc
import pytest
from grpc_status import rpc_status
from leadflow.capture.v1 import capture_pb2
from leadflow.common.v1 import common_pb2
from leadflow.reporting.v1 import reporting_pb2
from leadflow.routing.v1 import routing_pb2

from tests.support import violations_of


def rejected(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request)
    return caught.value


def leads_stored(platform) -> int:
    return platform.db("capture")["leads"].count_documents({})


def test_malformed_oversized_and_incomplete_leads_are_invalid_argument_naming_the_field(platform):
    client = platform.client("integration")
    before = leads_stored(platform)
    cases = {
        "lead.email": capture_pb2.LeadInput(email="li.na at example", attribution=common_pb2.Attribution(source="web")),
        "lead.company": capture_pb2.LeadInput(email="a@b.example.com", company="x" * 50_000,
                                              attribution=common_pb2.Attribution(source="web")),
        "lead.attribution.source": capture_pb2.LeadInput(email="a@b.example.com"),
    }
    for field, lead in cases.items():
        error = rejected(client.capture.SubmitLead, capture_pb2.SubmitLeadRequest(lead=lead))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in violations_of(rpc_status.from_call(error)), field
        assert field in error.details()
    assert leads_stored(platform) == before
    client.close()


def test_no_token_is_unauthenticated_and_a_rep_on_an_admin_rpc_is_permission_denied(platform):
    anonymous = platform.client("admin").with_token("")
    assert rejected(anonymous.reporting.GetFunnel, reporting_pb2.GetFunnelRequest()).code() == \
        grpc.StatusCode.UNAUTHENTICATED
    rep = platform.client("rep")
    put = routing_pb2.PutRepRequest(rep=routing_pb2.Rep(rep_id="sneaky", name="Sneaky", team="team-a"))
    assert rejected(rep.routing.PutRep, put).code() == grpc.StatusCode.PERMISSION_DENIED
    assert rejected(rep.reporting.RebuildProjections, reporting_pb2.RebuildProjectionsRequest()).code() == \
        grpc.StatusCode.PERMISSION_DENIED
    assert platform.db("routing")["reps"].count_documents({"_id": "sneaky"}) == 0
    for client in (anonymous, rep):
        client.close()


def test_every_service_answers_the_standard_health_check_without_a_token(platform):
    from grpc_health.v1 import health_pb2
    client = platform.client("admin").with_token("")
    for service in ("capture", "scoring", "routing", "opportunity", "reporting"):
        assert client.health(service).Check(health_pb2.HealthCheckRequest(), timeout=5).status == \
            health_pb2.HealthCheckResponse.SERVING
    client.close()
