"""Webhook sources and signatures."""
from services.capture.webhooks import is_signed_by, parse_secrets, signature_of


def test_secrets_setting_is_read_per_lower_case_source_and_ignores_junk():
    assert parse_secrets(" AdsPlatform=k1, landing=k=2 ,junk,=nosource") == {"adsplatform": b"k1", "landing": b"k=2"}
    assert parse_secrets("") == {}


def test_only_the_sources_key_over_the_exact_body_verifies():
    body = b'{"email": "a@b.com"}'
    signature = signature_of(b"k1", body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert is_signed_by(b"k1", body, signature)
    assert not is_signed_by(b"k2", body, signature)
    assert not is_signed_by(b"k1", body + b" ", signature)
    assert not is_signed_by(b"k1", body, "")
    assert not is_signed_by(b"k1", body, signature.upper())
