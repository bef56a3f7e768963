"""The gateway and the web console against a platform of their own: a sandbox (vhost, SecantusDB,
Redis prefix) separate from the e2e suite's, because the console's scenario needs a platform where
its rep is the only one leads can be routed to, and the API fuzzing writes whatever the schema allows.

Files run in name order on one platform: test_api (checks that leave routing alone), test_console
(the browser scenario), then test_fuzz, last because its random writes (reps, policies) may change
where leads go.
"""
import json
import urllib.request

import pytest

from services.cli.client import LeadflowClient
from services.devstack.infrastructure import InfrastructureError
from services.devstack.sandbox import Sandbox
from services.devstack.supervisor import Platform

pytestmark = pytest.mark.e2e


class Console:
    def __init__(self, platform: Platform, tokens):
        self.platform, self.tokens = platform, tokens
        self.url = platform.gateway.url

    def client(self, who: str = "admin") -> LeadflowClient:
        return LeadflowClient(self.tokens[who], self.platform.addresses())

    def post(self, path: str, body=None, who: str | None = "admin", raw: bytes | None = None,
             headers: dict | None = None):
        """(status, JSON body, headers) of a POST to the gateway, errors included."""
        data = raw if raw is not None else json.dumps(body if body is not None else {}).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method="POST",
                                         headers={"Content-Type": "application/json", **(headers or {})})
        if who:
            request.add_header("Authorization", f"Bearer {self.tokens[who]}")
        return _send(request)

    def get(self, path: str, who: str | None = None):
        request = urllib.request.Request(f"{self.url}{path}")
        if who:
            request.add_header("Authorization", f"Bearer {self.tokens[who]}")
        return _send(request)


def _send(request):
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, _decode(response), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, _decode(error), dict(error.headers)


def _decode(response):
    body = response.read()
    content_type = response.headers.get("Content-Type", "")
    if content_type.startswith("application/json"):
        return json.loads(body)
    return body.decode("utf-8", "replace") if content_type.startswith("text/") else body


@pytest.fixture(scope="session")
def console(tokens, tmp_path_factory):
    try:
        with Sandbox("console") as infra:
            env = {**infra.env(), "LEADFLOW_AUTH_TOKENS": tokens.table, "OUTBOX_POLL_SECONDS": "0.2",
                   "ROUTING_TIMER_SECONDS": "1", "REPORTING_TIMER_SECONDS": "1"}
            platform = Platform(env, tmp_path_factory.mktemp("console-logs"), any_free_port=True,
                                gateway=True).start()
            try:
                platform.wait_ready(timeout=90)
                yield Console(platform, tokens)
            finally:
                platform.stop()
    except InfrastructureError as exc:
        pytest.fail(str(exc), pytrace=False)
