"""Request sizes are bounded: a service refuses a request message larger than grpcio's default
4 MiB from its header alone, stores nothing, and the client's connection goes on working."""
import grpc
import pytest
from leadflow.capture.v1 import capture_pb2
from leadflow.common.v1 import common_pb2

from tests.e2e.conftest import new_batch, qualifying_lead

MAX_RECEIVE_MESSAGE_BYTES = 4 * 1024 * 1024  # GRPC_MAX_RECEIVE_MESSAGE_BYTES is not set: the default


def leads_stored(platform) -> int:
    return platform.db("capture")["leads"].count_documents({})


def test_a_lead_over_4_mib_is_resource_exhausted_and_the_client_can_go_on(platform):
    client = platform.client("integration")
    before = leads_stored(platform)
    batch = new_batch()
    # 48 custom fields of 96 KiB: 4.5 MiB of values (grpcio sends any size by default)
    huge = capture_pb2.SubmitLeadRequest(
        lead=capture_pb2.LeadInput(
            email=f"huge@{batch}.example.com", company="Huge Forms Ltd",
            attribution=common_pb2.Attribution(source="web"),
            custom_fields={f"field_{i}": "v" * (96 * 1024) for i in range(48)}),
        idempotency_key=f"{batch}-huge")
    assert huge.ByteSize() > MAX_RECEIVE_MESSAGE_BYTES

    with pytest.raises(grpc.RpcError) as caught:
        client.capture.SubmitLead(huge)

    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert caught.value.details() == \
        f"Received message larger than max ({huge.ByteSize()} vs. {MAX_RECEIVE_MESSAGE_BYTES})"
    assert leads_stored(platform) == before

    # same client, same channel: a normal lead is still captured
    response = client.capture.SubmitLead(qualifying_lead(0, batch))
    assert response.lead.lead_id
    assert leads_stored(platform) == before + 1
    client.close()
