"""Webhooks from ad platforms and landing-page tools: which sources exist and whether a delivery
really comes from its source."""
import hashlib
import hmac

SIGNATURE_HEADER = "X-Leadflow-Signature"
TIMESTAMP_HEADER = "X-Leadflow-Timestamp"
DELIVERY_HEADER = "X-Leadflow-Delivery"
# A signed request is good for this long: a captured one cannot be replayed later under a new delivery id.
TOLERANCE_SECONDS = 300
# A shorter key is refused: an empty or guessable secret (a template that interpolated nothing) would
# let anyone sign.
MIN_SECRET_LENGTH = 16


def parse_secrets(setting: str) -> dict[str, bytes]:
    """``source=secret,source2=secret2`` (WEBHOOK_SECRETS) as {source: key}; sources compare lower-case,
    and a source whose secret is shorter than MIN_SECRET_LENGTH is left out (its webhooks are refused)."""
    pairs = (item.split("=", 1) for item in setting.split(",") if "=" in item)
    return {source.strip().lower(): secret.strip().encode() for source, secret in pairs
            if source.strip() and len(secret.strip()) >= MIN_SECRET_LENGTH}


def signature_of(secret: bytes, timestamp: str, body: bytes) -> str:
    """What a source puts in X-Leadflow-Signature: ``sha256=`` and the hex HMAC-SHA256 of
    ``<X-Leadflow-Timestamp>.<raw body>`` (the timestamp in Unix seconds)."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def is_signed_by(secret: bytes, timestamp: str, body: bytes, signature: str, now: float) -> bool:
    """Signed with the source's key, within TOLERANCE_SECONDS of ``now``; compared in constant time,
    so the signature cannot be guessed byte by byte from response times."""
    try:
        age = abs(now - int(timestamp))
    except ValueError:
        return False
    return age <= TOLERANCE_SECONDS and hmac.compare_digest(
        signature.strip().encode(), signature_of(secret, timestamp.strip(), body).encode())
