"""Webhook sources and signatures."""
from services.capture.webhooks import parse_secrets
from services.common.webhook_signing import TOLERANCE_SECONDS, is_signed_by, signature_of

KEY = b"k1-0123456789abcdef"
NOW = 1_800_000_000


def test_secrets_setting_is_read_per_lower_case_source_and_refuses_short_or_empty_keys():
    setting = " AdsPlatform=k1-0123456789abcdef, landing=k=2-0123456789abcdef ,junk,=nosource,empty=,short=abc"
    assert parse_secrets(setting) == {"adsplatform": b"k1-0123456789abcdef", "landing": b"k=2-0123456789abcdef"}
    assert parse_secrets("") == {}


def test_only_the_sources_key_over_the_exact_body_and_a_fresh_timestamp_verifies():
    body, stamp = b'{"email": "a@b.com"}', str(NOW)
    signature = signature_of(KEY, stamp, body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert is_signed_by(KEY, stamp, body, signature, now=NOW + TOLERANCE_SECONDS)
    assert not is_signed_by(b"k2-0123456789abcdef", stamp, body, signature, now=NOW)
    assert not is_signed_by(KEY, stamp, body + b" ", signature, now=NOW)
    assert not is_signed_by(KEY, str(NOW + 1), body, signature, now=NOW)  # the timestamp is signed too
    assert not is_signed_by(KEY, stamp, body, signature, now=NOW + TOLERANCE_SECONDS + 1)  # a late replay
    assert not is_signed_by(KEY, "yesterday", body, signature, now=NOW)
    assert not is_signed_by(KEY, stamp, body, "", now=NOW)
