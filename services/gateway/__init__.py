"""The HTTP/JSON gateway over the five gRPC services, and the web console it serves (see app.py)."""
