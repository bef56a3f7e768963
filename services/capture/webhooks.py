"""Webhooks from ad platforms and landing-page tools: which sources exist and whether a delivery
really comes from its source (the signature scheme is services/common/webhook_signing.py)."""

# A shorter key is refused: an empty or guessable secret (a template that interpolated nothing) would
# let anyone sign.
MIN_SECRET_LENGTH = 16


def parse_secrets(setting: str) -> dict[str, bytes]:
    """``source=secret,source2=secret2`` (WEBHOOK_SECRETS) as {source: key}; sources compare lower-case,
    and a source whose secret is shorter than MIN_SECRET_LENGTH is left out (its webhooks are refused)."""
    pairs = (item.split("=", 1) for item in setting.split(",") if "=" in item)
    return {source.strip().lower(): secret.strip().encode() for source, secret in pairs
            if source.strip() and len(secret.strip()) >= MIN_SECRET_LENGTH}
