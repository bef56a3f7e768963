"""services.common.auth: the LEADFLOW_AUTH_TOKENS table, bearer authentication, role checks."""
import pytest

from services.common.auth import (
    ALL_ROLES,
    Principal,
    Role,
    authenticate,
    authorize,
    hash_token,
    new_token,
    parse_token_table,
    token_entry,
)
from services.common.errors import InvalidArgument, PermissionDenied, Unauthenticated

ALICE = Principal("alice", Role.ADMIN, "hq")
BOB = Principal("bob", Role.REP, "team-a")


def _fields(exc_info) -> list:
    return [v.field for v in exc_info.value.violations]


def test_token_table_round_trips_entries_made_by_token_entry():
    alice_token, bob_token = new_token(), new_token()
    table = parse_token_table(f"{token_entry(ALICE, alice_token)},{token_entry(BOB, bob_token)}")

    assert table == {hash_token(alice_token): ALICE, hash_token(bob_token): BOB}


def test_token_table_never_holds_the_token_itself():
    token = new_token()
    entry = token_entry(BOB, token)

    assert token not in entry
    assert entry.endswith(":" + hash_token(token))
    assert len(hash_token(token)) == 64


def test_token_table_ignores_blank_entries_and_surrounding_whitespace():
    token = new_token()
    table = parse_token_table(f" , {token_entry(BOB, token)} ,, ")

    assert table == {hash_token(token): BOB}


@pytest.mark.parametrize("spec", ["", " ", ",,"])
def test_empty_token_table_authenticates_nobody(spec):
    table = parse_token_table(spec)

    assert table == {}
    with pytest.raises(Unauthenticated):
        authenticate(f"Bearer {new_token()}", table)


def test_upper_case_digest_in_the_configuration_still_matches():
    token = new_token()
    table = parse_token_table(f"bob:rep:team-a:{hash_token(token).upper()}")

    assert authenticate(f"Bearer {token}", table) == BOB


@pytest.mark.parametrize("bad_entry", [
    "bob:rep:team-a",                      # digest missing
    "bob:rep:team-a:abc:extra",           # one field too many
    "just-a-token",                        # a raw token pasted in
])
def test_entry_with_wrong_number_of_fields_is_named_by_position(bad_entry):
    good = token_entry(ALICE, new_token())
    with pytest.raises(InvalidArgument) as raised:
        parse_token_table(f"{good},{bad_entry}")

    assert _fields(raised) == ["LEADFLOW_AUTH_TOKENS[1]"]
    assert "principal:role:team:sha256hex" in raised.value.violations[0].description


def test_unknown_role_is_named_and_quoted():
    with pytest.raises(InvalidArgument) as raised:
        parse_token_table(f"carol:superuser:hq:{hash_token('x')}")

    assert _fields(raised) == ["LEADFLOW_AUTH_TOKENS[0].role"]
    assert "'superuser'" in raised.value.violations[0].description


def test_roles_are_case_sensitive_in_the_table():
    with pytest.raises(InvalidArgument) as raised:
        parse_token_table(f"carol:Admin:hq:{hash_token('x')}")

    assert _fields(raised) == ["LEADFLOW_AUTH_TOKENS[0].role"]


@pytest.mark.parametrize("digest", ["my-plain-secret-token", "", "abc123"])
def test_digest_that_is_not_a_sha256_hex_is_rejected_and_named(digest):
    with pytest.raises(InvalidArgument) as raised:
        parse_token_table(f"carol:admin:hq:{digest}")

    assert _fields(raised)[0].startswith("LEADFLOW_AUTH_TOKENS[0]")


# --- authenticate -----------------------------------------------------------------------------------

@pytest.fixture
def table_and_token():
    token = new_token()
    return parse_token_table(token_entry(BOB, token)), token


@pytest.mark.parametrize("header", ["Bearer {t}", "bearer {t}", "BEARER {t}", "Bearer   {t}  "])
def test_authenticate_resolves_a_known_bearer_token(table_and_token, header):
    table, token = table_and_token

    assert authenticate(header.format(t=token), table) == BOB


@pytest.mark.parametrize("header", [None, ""])
def test_missing_authorization_is_unauthenticated(table_and_token, header):
    table, _ = table_and_token
    with pytest.raises(Unauthenticated, match="missing"):
        authenticate(header, table)


@pytest.mark.parametrize("header", ["{t}", "Basic {t}", "Token {t}", "Bearer", "Bearer ", "Bearer    ",
                                    "Bearer\t{t}"])
def test_malformed_authorization_is_unauthenticated(table_and_token, header):
    table, token = table_and_token
    with pytest.raises(Unauthenticated, match="Bearer <token>"):
        authenticate(header.format(t=token), table)


def test_unknown_token_is_unauthenticated_and_not_echoed(table_and_token):
    table, token = table_and_token
    stranger = new_token()
    with pytest.raises(Unauthenticated) as raised:
        authenticate(f"Bearer {stranger}", table)

    assert "unknown or revoked" in str(raised.value)
    assert stranger not in str(raised.value)


def test_the_hash_itself_is_not_a_valid_token(table_and_token):
    """Someone who reads the configuration must not be able to log in with what they read."""
    table, token = table_and_token
    with pytest.raises(Unauthenticated):
        authenticate(f"Bearer {hash_token(token)}", table)


def test_new_tokens_are_long_and_distinct():
    tokens = {new_token() for _ in range(50)}

    assert len(tokens) == 50
    assert all(len(t) >= 40 for t in tokens)


# --- authorize ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("role", list(Role))
def test_every_role_passes_when_all_roles_are_allowed(role):
    authorize(Principal("p", role, "t"), ALL_ROLES, "GetLead")


def test_authorize_passes_an_allowed_role():
    authorize(BOB, {Role.REP, Role.MANAGER}, "LogActivity")


def test_authorize_rejects_a_role_outside_the_allowed_set_and_explains():
    with pytest.raises(PermissionDenied) as raised:
        authorize(BOB, {Role.ADMIN, Role.MANAGER}, "CreateRep")

    message = str(raised.value)
    assert "CreateRep" in message
    assert "admin, manager" in message
    assert "bob is rep" in message


def test_principal_survives_the_trip_through_context_data():
    assert Principal.from_dict(BOB.as_dict()) == BOB
    assert Principal.from_dict({"id": "x", "role": "integration"}) == Principal("x", Role.INTEGRATION, "")
