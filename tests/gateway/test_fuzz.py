"""Schemathesis fuzzes the gateway from its own OpenAPI document, against the real services behind it:
whatever a schema-valid or malformed body holds, the answer is never a server error, its status is
one the document declares, and a 200 body matches the declared response schema."""
import pytest
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from services.gateway.app import api_document

pytestmark = pytest.mark.e2e

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


# The same document the gateway serves (test_api checks it is served); built here so that every
# operation is its own test item, named after it.
schema = schemathesis.openapi.from_dict(api_document("test"))
# Bodies that fit the schema and bodies that break it (wrong types, missing objects): both must be
# answered with a declared status, never a 5xx.
schema.config.generation.update(modes=list(GenerationMode))


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_no_request_makes_the_gateway_or_a_service_fail(case, console):
    case.call_and_validate(base_url=console.url, headers={"Authorization": f"Bearer {console.tokens['admin']}"},
                           checks=CHECKS)
