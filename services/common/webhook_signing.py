"""How Leadflow signs a webhook and checks one, in both directions: capture checks what ad platforms
and landing-page tools post to it, reporting signs the events it posts to subscribers."""
import hashlib
import hmac

SIGNATURE_HEADER = "X-Leadflow-Signature"
TIMESTAMP_HEADER = "X-Leadflow-Timestamp"
DELIVERY_HEADER = "X-Leadflow-Delivery"
# A signed request is good for this long: a captured one cannot be replayed later under a new delivery id.
TOLERANCE_SECONDS = 300


def signature_of(secret: bytes, timestamp: str, body: bytes) -> str:
    """What goes in X-Leadflow-Signature: ``sha256=`` and the hex HMAC-SHA256 of
    ``<X-Leadflow-Timestamp>.<raw body>`` (the timestamp in Unix seconds)."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def is_signed_by(secret: bytes, timestamp: str, body: bytes, signature: str, now: float) -> bool:
    """Signed with ``secret``, within TOLERANCE_SECONDS of ``now``; compared in constant time, so the
    signature cannot be guessed byte by byte from response times."""
    try:
        age = abs(now - int(timestamp))
    except ValueError:
        return False
    return age <= TOLERANCE_SECONDS and hmac.compare_digest(
        signature.strip().encode(), signature_of(secret, timestamp.strip(), body).encode())
