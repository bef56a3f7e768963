"""Hostile input through gRPC, read from the contracts themselves: every unary RPC of every service gets
generated requests — hostile strings, extreme and non-finite numbers, unknown enum values, deep
nesting — with an admin token, so they pass authentication and reach the handlers. Each answer must be
a status a client can act on (never INTERNAL, UNKNOWN or a deadline), and every service must still
answer health within a second afterwards.

The platform is its own (its own vhost, databases and Redis prefix): a generated request that happens
to be valid (a scoring model, a pipeline, a rep) must not change what the other end-to-end tests see.
The generator is seeded, so a failure names a request that fails again the same way."""
import math
import random
from collections import Counter

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from grpc_health.v1 import health_pb2

from services.cli.client import STUBS
from tests.e2e.conftest import own_platform

REQUESTS_PER_RPC = 25
CALL_DEADLINE_SECONDS = 15
NOT_ACCEPTABLE = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED}

HOSTILE_STRINGS = [
    "", " ", "\t\n", "\x00", "\x00" * 64, "a" * 100_000, "é" * 5_000, "💥" * 2_000, "\u202e\u202d", "\ud7ff\ufffd",
    "' OR 1=1 --", '{"$gt": ""}', "$where", "a.$b", "${jndi:ldap://x/a}", "{{7*7}}", "<script>alert(1)</script>",
    "../../etc/passwd", "http://[oops", "https://", "javascript:alert(1)", "mailto:@", "@" * 10_000,
    "x@" * 3_000, "NaN", "Infinity", "-1", "9" * 400, "1e309", "0x7fffffff", "2026-13-45T25:61:61Z",
    "((((((((((((((((((((a*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*)*", "[" * 1_000, "%s%s%s%n", "\\", "null",
    "admin", "*", "lead-1", "USD", "closed_won", "+44 20 7946 0958",
]
EXTREME_INTS = {
    32: [0, 1, -1, 2 ** 31 - 1, -2 ** 31],
    64: [0, 1, -1, 2 ** 63 - 1, -2 ** 63, 2 ** 53 + 1],
}
EXTREME_UNSIGNED = {32: [0, 1, 2 ** 32 - 1], 64: [0, 1, 2 ** 64 - 1]}
EXTREME_FLOATS = [0.0, -0.0, math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, 0.1, -1.0]
INT32_TYPES = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32}
INT64_TYPES = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64}
UINT_TYPES = {FieldDescriptor.TYPE_UINT32: 32, FieldDescriptor.TYPE_FIXED32: 32, FieldDescriptor.TYPE_UINT64: 64,
              FieldDescriptor.TYPE_FIXED64: 64}
MAX_DEPTH = 4
STRUCT_DEPTH = 40  # deep, yet inside protobuf's own recursion limit of 100


def _hostile_value(rng: random.Random, depth: int = 0):
    """A JSON-like value for Struct fields: nested, non-finite, long."""
    pick = rng.random()
    if depth < STRUCT_DEPTH and pick < 0.25:
        return {rng.choice(["groups", "criteria", "when", "stages", "x"]): _hostile_value(rng, depth + 1)}
    if depth < STRUCT_DEPTH and pick < 0.4:
        return [_hostile_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if pick < 0.65:
        return rng.choice(EXTREME_FLOATS)
    if pick < 0.75:
        return rng.choice([True, False, None])
    return rng.choice(HOSTILE_STRINGS)


def _scalar(field, rng: random.Random):
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return rng.choice(HOSTILE_STRINGS)
    if kind == FieldDescriptor.TYPE_BYTES:
        return rng.choice([b"", b"\x00" * 10, bytes(rng.getrandbits(8) for _ in range(200)), b"%PDF-1.4\n" * 50,
                           b"\x89PNG\r\n\x1a\n" + b"\xff" * 100, "ä,ö\n1,2".encode("latin-1")])
    if kind == FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if kind in INT32_TYPES:
        return rng.choice(EXTREME_INTS[32])
    if kind in INT64_TYPES:
        return rng.choice(EXTREME_INTS[64])
    if kind in UINT_TYPES:
        return rng.choice(EXTREME_UNSIGNED[UINT_TYPES[kind]])
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return rng.choice(EXTREME_FLOATS)
    if kind == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return rng.choice(known + [999, -7])  # open enums: unknown numbers reach the handler
    raise AssertionError(f"unhandled field type {kind} of {field.full_name}")


def fill(message, rng: random.Random, depth: int = 0):
    """Set a random choice of the message's fields, recursively, with hostile values."""
    descriptor = message.DESCRIPTOR
    if descriptor.full_name == "google.protobuf.Struct":
        message.update({rng.choice(["definition", "groups", "a", "stages"]): _hostile_value(rng)
                        for _ in range(rng.randint(0, 4))})
        return message
    if descriptor.full_name == "google.protobuf.Timestamp":
        message.seconds = rng.choice([0, -1, 1, 253402300799, 253402300800, -62135596801, 2 ** 62])
        message.nanos = rng.choice([0, 999_999_999])
        return message
    for field in descriptor.fields:
        if rng.random() < 0.35:
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            target = getattr(message, field.name)
            entry = field.message_type.fields_by_name
            key_field, value_field = entry["key"], entry["value"]
            for _ in range(rng.randint(0, 3)):
                key = _scalar(key_field, rng)
                if value_field.message_type is not None:
                    if depth < MAX_DEPTH:
                        fill(target[key], rng, depth + 1)
                else:
                    target[key] = _scalar(value_field, rng)
            continue
        repeated = field.is_repeated
        count = rng.choice([0, 1, 2, 3, 40]) if repeated else 1
        for _ in range(count):
            if field.message_type is not None:
                if depth >= MAX_DEPTH:
                    break
                child = getattr(message, field.name).add() if repeated else getattr(message, field.name)
                fill(child, rng, depth + 1)
                if not repeated:
                    child.SetInParent()
            elif repeated:
                getattr(message, field.name).append(_scalar(field, rng))
            else:
                setattr(message, field.name, _scalar(field, rng))
    return message


def unary_methods():
    """(service, method name, request class) for every unary RPC in the contracts."""
    from google.protobuf import symbol_database
    database = symbol_database.Default()
    found = []
    for service, stub in STUBS.items():
        module = __import__(stub.__module__.replace("_pb2_grpc", "_pb2"), fromlist=["DESCRIPTOR"])
        for service_descriptor in module.DESCRIPTOR.services_by_name.values():
            for method in service_descriptor.methods:
                if method.client_streaming or method.server_streaming:
                    continue
                found.append((service, method.name, database.GetSymbol(method.input_type.full_name)))
    return found


METHODS = unary_methods()


@pytest.fixture(scope="module")
def fuzzed_platform(infra, tokens, tmp_path_factory):
    with own_platform(infra, tokens, tmp_path_factory.mktemp("fuzz-logs"), "fuzz") as running:
        client = running.client("admin")
        yield running, client
        client.close()


def test_the_contracts_have_unary_rpcs_to_fuzz():
    assert len(METHODS) >= 30 and {service for service, _, _ in METHODS} == set(STUBS)


@pytest.mark.timeout(900)
def test_every_unary_rpc_answers_hostile_requests_with_a_status_a_client_can_act_on(fuzzed_platform):
    platform, client = fuzzed_platform
    unacceptable, answers = [], Counter()
    for service, method, request_class in METHODS:
        rng = random.Random(f"{service}.{method}")
        for attempt in range(REQUESTS_PER_RPC):
            request = fill(request_class(), rng)
            try:
                getattr(getattr(client, service), method)(request, timeout=CALL_DEADLINE_SECONDS)
                answers[grpc.StatusCode.OK] += 1
            except grpc.RpcError as error:
                answers[error.code()] += 1
                if error.code() in NOT_ACCEPTABLE:
                    unacceptable.append(f"{service}.{method} #{attempt}: {error.code().name} {error.details()[:300]}")
    assert not unacceptable, "\n".join(unacceptable)
    # The requests reached the handlers: some were valid enough to be served, most refused by field.
    assert answers[grpc.StatusCode.OK] >= 50 and answers[grpc.StatusCode.INVALID_ARGUMENT] >= 500, answers

    anonymous = client.with_token("")
    for service in STUBS:
        answer = anonymous.health(service).Check(health_pb2.HealthCheckRequest(), timeout=1)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, service
    anonymous.close()
