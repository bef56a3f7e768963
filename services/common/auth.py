"""Bearer-token authentication and role checks (DESIGN.md §5), pure: no gRPC or nameko here.

Tokens are configured as SHA-256 hashes (``LEADFLOW_AUTH_TOKENS``), so the configuration never
holds a usable secret; the presented token is hashed and looked up, and never logged.
"""
import hashlib
import re
import secrets
from dataclasses import dataclass
from enum import Enum

from services.common.errors import InvalidArgument, FieldViolation, PermissionDenied, Unauthenticated


class Role(str, Enum):
    ADMIN = "admin"
    MANAGER = "manager"
    REP = "rep"
    INTEGRATION = "integration"


ALL_ROLES = frozenset(Role)
_SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class Principal:
    id: str
    role: Role
    team: str

    def as_dict(self) -> dict:
        return {"id": self.id, "role": self.role.value, "team": self.team}

    @classmethod
    def from_dict(cls, data: dict) -> "Principal":
        return cls(id=data["id"], role=Role(data["role"]), team=data.get("team", ""))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_entry(principal: Principal, token: str) -> str:
    """One ``LEADFLOW_AUTH_TOKENS`` entry for a principal and its (never stored) token."""
    return f"{principal.id}:{principal.role.value}:{principal.team}:{hash_token(token)}"


def parse_token_table(spec: str) -> dict:
    """``principal:role:team:sha256hex`` entries separated by commas -> {hash: Principal}."""
    table = {}
    for position, entry in enumerate(filter(None, (e.strip() for e in spec.split(",")))):
        parts = entry.split(":")
        if len(parts) != 4:
            raise InvalidArgument([FieldViolation(
                f"LEADFLOW_AUTH_TOKENS[{position}]", "must be principal:role:team:sha256hex")])
        principal_id, role, team, digest = parts
        if not _SHA256_HEX.match(digest):
            raise InvalidArgument([FieldViolation(
                f"LEADFLOW_AUTH_TOKENS[{position}].sha256", "must be the 64-hex-digit SHA-256 of the token, "
                "not the token itself (leadflow token new prints it)")])
        try:
            table[digest.lower()] = Principal(principal_id, Role(role), team)
        except ValueError:
            raise InvalidArgument([FieldViolation(
                f"LEADFLOW_AUTH_TOKENS[{position}].role", f"unknown role {role!r}")]) from None
    return table


def authenticate(authorization: str | None, token_table: dict) -> Principal:
    """Resolve an ``authorization: Bearer <token>`` metadata value to its principal."""
    if not authorization:
        raise Unauthenticated("missing 'authorization: Bearer <token>' metadata")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("authorization metadata must be 'Bearer <token>'")
    principal = token_table.get(hash_token(token.strip()))
    if principal is None:
        raise Unauthenticated("unknown or revoked token")
    return principal


def authorize(principal: Principal, allowed_roles, action: str) -> None:
    if principal.role not in allowed_roles:
        allowed = ", ".join(sorted(r.value for r in allowed_roles))
        raise PermissionDenied(f"{action} needs one of the roles: {allowed}; {principal.id} is {principal.role.value}")


def can_see_lead(principal: Principal, owner_id: str, owner_team: str) -> bool:
    """A rep sees only the leads routed to them, a manager their team's and the not yet routed ones;
    admins and integrations see all. To anyone else such a lead does not exist (NOT_FOUND)."""
    if principal.role == Role.REP:
        return owner_id == principal.id
    if principal.role == Role.MANAGER:
        return owner_team in ("", principal.team)
    return True
