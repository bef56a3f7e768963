"""Posting to other systems' HTTP endpoints (team notification webhooks, webhook subscriptions to the
event stream): one way, with a deadline, reading at most a little of the answer."""
import urllib.error
import urllib.request


def post(url: str, body: bytes, headers: dict, timeout: float) -> None:
    """POST ``body``; raises (urllib.error.HTTPError for a 4xx/5xx, URLError or OSError when the
    receiver is unreachable or too slow) unless it answered 2xx."""
    with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers, method="POST"),
                                timeout=timeout) as response:
        response.read(64 * 1024)
        if not 200 <= response.status < 300:
            raise urllib.error.HTTPError(url, response.status, "not a 2xx answer", response.headers, None)


def failure_of(error: BaseException) -> str:
    """A failed post in a few words, for an admin: "HTTP 503", "timed out", "unreachable: ..."."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code}"
    reason = getattr(error, "reason", error)
    return "timed out" if "timed out" in str(reason) else f"unreachable: {reason}"
