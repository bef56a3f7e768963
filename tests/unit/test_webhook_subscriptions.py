"""What a webhook subscription may say, how long a failing one waits, and what a receiver gets."""
import json

import pytest

from services.common.errors import InvalidArgument
from services.common.events import make_event
from services.common.webhook_signing import is_signed_by
from services.reporting.webhooks import MAX_BACKOFF_SECONDS, backoff_seconds, checked_subscription, delivery


def test_a_subscription_is_checked_field_by_field():
    spec = checked_subscription("erp-1", " https://erp.example.com/hook ", ["opportunity_won", "opportunity_won"], "")
    assert (spec.url, spec.event_types) == ("https://erp.example.com/hook", ("opportunity_won",))
    with pytest.raises(InvalidArgument) as caught:
        checked_subscription("", "erp.example.com", [], "x" * 501)
    assert {v.field for v in caught.value.violations} == {
        "subscription.subscription_id", "subscription.url", "subscription.event_types", "subscription.description"}


def test_the_wait_doubles_from_the_first_retry_up_to_an_hour():
    assert [backoff_seconds(n, 10) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert backoff_seconds(30, 10) == MAX_BACKOFF_SECONDS


def test_a_delivery_is_the_event_as_json_signed_with_the_subscriptions_secret():
    event = make_event("opportunity_won", {"opportunity_id": "opp-1"}, {"amount": "1200.50", "account_name": "上海"})
    body, headers = delivery(event, "s3cret-s3cret-s3cret", now=1_800_000_000.0)
    assert json.loads(body) == event
    assert headers["X-Leadflow-Delivery"] == event["event_id"] and headers["X-Leadflow-Event"] == "opportunity_won"
    assert is_signed_by(b"s3cret-s3cret-s3cret", headers["X-Leadflow-Timestamp"], body,
                        headers["X-Leadflow-Signature"], now=1_800_000_010.0)
    assert not is_signed_by(b"another-secret-xx", headers["X-Leadflow-Timestamp"], body,
                            headers["X-Leadflow-Signature"], now=1_800_000_010.0)
