"""End-to-end tests: the five services as separate processes (as in production), on this session's
real RabbitMQ vhost, Redis prefix and embedded SecantusDB, driven through the public gRPC API with
grpcio. Run with plain pytest: this process hosts no nameko container, so no eventlet here.
"""
import concurrent.futures
import contextlib
import dataclasses
import uuid

import pymongo
import pytest
from leadflow.capture.v1 import capture_pb2
from leadflow.common.v1 import common_pb2
from leadflow.routing.v1 import routing_pb2

from services.cli.client import LeadflowClient
from services.common.settings import database_name
from services.devstack.sandbox import create_vhost, delete_vhost
from services.devstack.supervisor import Platform

pytestmark = pytest.mark.e2e


class RunningPlatform:
    def __init__(self, platform: Platform, infra, tokens):
        self.platform, self.infra, self.tokens = platform, infra, tokens
        self.mongo = pymongo.MongoClient(infra.mongo_uri)

    def client(self, who: str = "admin") -> LeadflowClient:
        return LeadflowClient(self.tokens[who], self.platform.addresses())

    def db(self, service: str):
        return self.mongo[database_name(self.infra.db_prefix, service)]


@contextlib.contextmanager
def running_platform(infra, tokens, log_dir):
    """The five services as processes against ``infra``, ready, stopped afterwards."""
    env = {**infra.env(), "LEADFLOW_AUTH_TOKENS": tokens.table, "OUTBOX_POLL_SECONDS": "0.2"}
    running = Platform(env, log_dir, any_free_port=True).start()
    try:
        running.wait_ready(timeout=120)
        yield RunningPlatform(running, infra, tokens)
    finally:
        running.stop()


@pytest.fixture(scope="session")
def platform(infra, tokens, tmp_path_factory):
    with running_platform(infra, tokens, tmp_path_factory.mktemp("logs")) as running:
        yield running


@contextlib.contextmanager
def own_platform(infra, tokens, log_dir, name: str):
    """Five services of their own — own vhost, databases and Redis prefix — for a test whose data or
    load must not reach the shared platform's tests."""
    run = f"{name}{uuid.uuid4().hex[:6]}"
    vhost = f"leadflow-{run}"
    own = dataclasses.replace(infra, amqp_uri=create_vhost(vhost), db_prefix=f"{infra.db_prefix}{run}",
                              redis_prefix=f"{infra.redis_prefix}-{run}")
    try:
        with running_platform(own, tokens, log_dir) as running:
            yield running
    finally:
        delete_vhost(vhost)


@pytest.fixture(scope="session")
def reps(platform):
    client = platform.client("admin")
    rep_ids = ["e2e.amy", "e2e.bo", "e2e.chen", "e2e.dana"]
    for rep_id in rep_ids:
        client.routing.PutRep(routing_pb2.PutRepRequest(rep=routing_pb2.Rep(
            rep_id=rep_id, name=rep_id.split(".")[1].title(), team="team-a")))
    client.close()
    return rep_ids


def qualifying_lead(index: int, batch: str) -> capture_pb2.SubmitLeadRequest:
    """A lead the default scoring model qualifies (decision maker, large company, referral)."""
    return capture_pb2.SubmitLeadRequest(
        lead=capture_pb2.LeadInput(
            email=f"buyer{index}@{batch}.example.com", first_name="Buyer", last_name=str(index), title="CTO",
            company=f"Company {index}", company_size=800, industry="software",
            attribution=common_pb2.Attribution(source="referral", campaign=batch)),
        idempotency_key=f"{batch}-{index}")


def submit_all(client: LeadflowClient, requests, concurrency: int = 16) -> list:
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        return [r.lead.lead_id for r in pool.map(client.capture.SubmitLead, requests)]


def new_batch() -> str:
    return f"batch{uuid.uuid4().hex[:8]}"
