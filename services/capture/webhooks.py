"""Webhooks from ad platforms and landing-page tools: which sources exist and whether a delivery
really comes from its source."""
import hashlib
import hmac

SIGNATURE_HEADER = "X-Leadflow-Signature"
DELIVERY_HEADER = "X-Leadflow-Delivery"


def parse_secrets(setting: str) -> dict[str, bytes]:
    """``source=secret,source2=secret2`` (WEBHOOK_SECRETS) as {source: key}; sources compare lower-case."""
    pairs = (item.split("=", 1) for item in setting.split(",") if "=" in item)
    return {source.strip().lower(): secret.strip().encode() for source, secret in pairs if source.strip()}


def signature_of(secret: bytes, body: bytes) -> str:
    """What a source puts in X-Leadflow-Signature: ``sha256=`` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def is_signed_by(secret: bytes, body: bytes, signature: str) -> bool:
    """Compared in constant time, so the signature cannot be guessed byte by byte from response times."""
    return hmac.compare_digest(signature.strip().encode(), signature_of(secret, body).encode())
