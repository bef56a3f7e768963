"""Development credentials: random tokens made on first ``make run``, kept in .leadflow/ (git-ignored).

Services only ever see the SHA-256 hashes (``LEADFLOW_AUTH_TOKENS``); the tokens themselves are
for the developer's CLI and the demo.
"""
import json
import os
from pathlib import Path

from services.common.auth import Principal, Role, new_token, token_entry

DEV_PRINCIPALS = (
    Principal("admin", Role.ADMIN, "hq"),
    Principal("integration", Role.INTEGRATION, "hq"),
    Principal("manager.wang", Role.MANAGER, "sales-cn"),
    Principal("li.na", Role.REP, "sales-cn"),
    Principal("zhang.wei", Role.REP, "sales-cn"),
    Principal("anna.schmidt", Role.REP, "sales-cn"),
)


def load_or_create(path: Path) -> dict:
    """{principal id: token}."""
    if path.exists():
        return json.loads(path.read_text())
    tokens = {p.id: new_token() for p in DEV_PRINCIPALS}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tokens, indent=2))
    os.chmod(path, 0o600)
    return tokens


def auth_table(tokens: dict, principals=DEV_PRINCIPALS) -> str:
    return ",".join(token_entry(p, tokens[p.id]) for p in principals if p.id in tokens)
