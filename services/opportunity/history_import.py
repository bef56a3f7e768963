"""ImportOpportunities, the pure part: a company's sales history (exported from its old CRM or
spreadsheets) becomes Leadflow opportunities, so that reporting and forecasting start with the past.

An import is up to four tables, each a CSV or XLSX file read by ``services.common.tabular``:

- ``opportunities`` (required): one row per deal — external id, owner (the sales agent's name),
  stage, and optionally account, product, engaged/closed dates, amount, lost reason, name;
- ``accounts``: the customer companies — name, industry, employees, location, parent company;
- ``sales_teams``: who works for whom — agent, manager, regional office;
- ``products``: the product list — name, series, list price.

Columns are found by their usual names (``sales_agent``, ``deal_stage``, ``close_value``...) or by
the mapping given for the file. Real exports are untidy, so the reading is forgiving where the
meaning is certain and says what it did: a product written without its space ("GTXPro" for
"GTX Pro") is the listed product; an account, agent or product the reference tables lack is kept
as written and counted; a lost deal's zero value is an unknown amount, not a deal worth nothing.
A row whose meaning is not certain (an unknown stage, a won deal without a close date, a close
before the engagement) is rejected with its row number and column, and never stops the others.
"""
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

import pycountry

from services.common.errors import FieldViolation, InvalidArgument, Validator
from services.common.money import checked_amount
from services.opportunity.domain import PRINCIPAL_ID
from services.opportunity.pipeline import LOST, WON, Pipeline

OPPORTUNITIES, ACCOUNTS, SALES_TEAMS, PRODUCTS = "opportunities", "accounts", "sales_teams", "products"
TABLES = (OPPORTUNITIES, ACCOUNTS, SALES_TEAMS, PRODUCTS)
IGNORE = "ignore"

# Each table's fields, with the column names they are found under (compared without case, spaces or
# punctuation); the first field of each reference table is its key.
FIELDS = {
    OPPORTUNITIES: {
        "external_id": ("opportunity_id", "opportunity", "deal_id", "external_id", "id"),
        "owner": ("sales_agent", "owner", "agent", "sales_rep", "rep", "account_executive"),
        "stage": ("deal_stage", "stage", "status"),
        "account": ("account", "account_name", "company", "customer"),
        "product": ("product", "product_name"),
        "engaged_on": ("engage_date", "engaged_on", "created_date", "created", "open_date"),
        "closed_on": ("close_date", "closed_on", "closed_date", "closed", "won_lost_date"),
        "amount": ("close_value", "amount", "deal_value", "value"),
        "lost_reason": ("lost_reason", "loss_reason", "reason_lost"),
        "name": ("opportunity_name", "deal_name", "name"),
    },
    ACCOUNTS: {
        "account": ("account", "account_name", "company", "name"),
        "industry": ("sector", "industry"),
        "employees": ("employees", "employee_count", "headcount"),
        "location": ("office_location", "location", "country", "headquarters"),
        "parent": ("subsidiary_of", "parent", "parent_account"),
    },
    SALES_TEAMS: {
        "owner": ("sales_agent", "agent", "owner", "sales_rep", "rep"),
        "manager": ("manager", "sales_manager"),
        "office": ("regional_office", "office", "region"),
    },
    PRODUCTS: {
        "product": ("product", "product_name", "name"),
        "series": ("series", "product_line", "family"),
        "price": ("sales_price", "list_price", "price"),
    },
}
REQUIRED = {OPPORTUNITIES: ("external_id", "owner", "stage"), ACCOUNTS: ("account",), SALES_TEAMS: ("owner",),
            PRODUCTS: ("product",)}
WON_WORDS = frozenset({"won", "closedwon", "win", "赢单", "成交"})
LOST_WORDS = frozenset({"lost", "closedlost", "loss", "输单", "丢单"})
MAX_TEXT = 200
MAX_EXTERNAL_ID = 100
_NOT_WORD = re.compile(r"[\W_]+")


def key_of(text: str) -> str:
    """What two spellings of one name share: no case, spacing or punctuation ("GTXPro" = "GTX Pro")."""
    return _NOT_WORD.sub("", unicodedata.normalize("NFKC", text).casefold())


def person_id(name: str) -> str:
    """A user id for a person known only by name in the history ("Moses Frase" -> "moses.frase")."""
    words = re.findall(r"\w+", unicodedata.normalize("NFKC", name).casefold())
    return ".".join(words)[:64]


def team_of(manager_name: str) -> str:
    """The team a manager leads, named after them ("Cara Losch" -> "cara-losch-team")."""
    return "-".join(re.findall(r"\w+", unicodedata.normalize("NFKC", manager_name).casefold()))[:58] + "-team"


# ---- mappings ---------------------------------------------------------------------------------------

def column_mapping(table: str, headers: list, given: dict, where: str) -> dict:
    """{column header: field} for one file: the ``given`` mapping where there is one, else found by
    name. Raises InvalidArgument naming an unknown field or a required field no column holds."""
    known = FIELDS[table]
    if given:
        check = Validator()
        by_key = {key_of(h): h for h in headers}
        mapping = {}
        for column, target in given.items():
            header = by_key.get(key_of(column))
            check.check(header is not None, f"{where}.mapping[{column}]", "no such column in the file")
            check.check(target in known or target == IGNORE, f"{where}.mapping[{column}]",
                        f"unknown field {target!r}; one of {', '.join(known)} or {IGNORE}")
            if header is not None and target != IGNORE:
                mapping[header] = target
        check.raise_if_invalid()
    else:
        mapping, taken = {}, set()
        for target, names in known.items():
            for name in names:
                header = next((h for h in headers if key_of(h) == key_of(name) and h not in mapping), None)
                if header is not None and target not in taken:
                    mapping[header] = target
                    taken.add(target)
                    break
    targets = list(mapping.values())
    violations = [FieldViolation(f"{where}.mapping", f"two columns hold {t}") for t in set(targets)
                  if targets.count(t) > 1]
    violations += [FieldViolation(f"{where}.mapping", f"no column holds {t} (looked for "
                                                      f"{', '.join(known[t])}); map one")
                   for t in REQUIRED[table] if t not in targets]
    if violations:
        raise InvalidArgument(violations)
    return mapping


def fields_of(row: dict, mapping: dict) -> dict:
    return {target: " ".join((row.get(header) or "").split()) for header, target in mapping.items()}


# ---- reference tables -------------------------------------------------------------------------------

@dataclass(frozen=True)
class AccountRow:
    name: str
    industry: str = ""
    employees: int = 0
    location: str = ""  # as written ("Philipines" stays readable even when no country matches)
    country: str = ""  # ISO 3166 code when the location names a country
    parent: str = ""

    @property
    def key(self) -> str:
        return key_of(self.name)


@dataclass(frozen=True)
class TeamRow:
    owner: str
    manager: str = ""
    office: str = ""

    @property
    def key(self) -> str:
        return key_of(self.owner)


@dataclass(frozen=True)
class ProductRow:
    name: str
    series: str = ""
    price: str = ""

    @property
    def key(self) -> str:
        return key_of(self.name)


@dataclass
class Reference:
    """The reference tables by key_of(name); empty when a table was not given."""

    accounts: dict = field(default_factory=dict)
    teams: dict = field(default_factory=dict)
    products: dict = field(default_factory=dict)


class RowRejected(Exception):
    def __init__(self, field_name: str, reason: str):
        self.field_name, self.reason = field_name, reason
        super().__init__(f"{field_name}: {reason}")


def _text(values: dict, name: str, limit: int = MAX_TEXT) -> str:
    value = values.get(name, "")
    if len(value) > limit:
        raise RowRejected(name, f"longer than {limit} characters")
    return value


def account_row(values: dict) -> AccountRow:
    name = _text(values, "account")
    if not name:
        raise RowRejected("account", "is empty")
    employees = values.get("employees", "").replace(",", "")
    if employees and not employees.isdigit():
        raise RowRejected("employees", f"{employees!r} is not a whole number")
    location = _text(values, "location")
    return AccountRow(name=name, industry=_text(values, "industry").lower(), employees=int(employees or 0),
                      location=location, country=country_of(location), parent=_text(values, "parent"))


def country_of(location: str) -> str:
    if not location:
        return ""
    try:
        return pycountry.countries.lookup(location).alpha_2
    except LookupError:
        return ""


def team_row(values: dict) -> TeamRow:
    owner = _text(values, "owner")
    if not owner:
        raise RowRejected("owner", "is empty")
    return TeamRow(owner=owner, manager=_text(values, "manager"), office=_text(values, "office"))


def product_row(values: dict) -> ProductRow:
    name = _text(values, "product")
    if not name:
        raise RowRejected("product", "is empty")
    check = Validator()
    price = checked_amount(check, values.get("price", ""), "price")
    if check.violations:
        raise RowRejected("price", check.violations[0].description)
    return ProductRow(name=name, series=_text(values, "series"), price=str(price) if price is not None else "")


REFERENCE_READERS = {ACCOUNTS: account_row, SALES_TEAMS: team_row, PRODUCTS: product_row}


# ---- opportunities ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class StageMap:
    """The file's stage words -> (stage id, status). Explicit entries first; else a pipeline stage
    whose id or name reads the same, or a word for won or lost."""

    pipeline: Pipeline
    explicit: dict  # key_of(word) -> "won" | "lost" | stage id

    def resolve(self, word: str):
        key = key_of(word)
        target = self.explicit.get(key)
        if target is None:
            if key in WON_WORDS:
                target = "won"
            elif key in LOST_WORDS:
                target = "lost"
            else:
                target = next((s.stage_id for s in self.pipeline.stages
                               if key in (key_of(s.stage_id), key_of(s.name))), None)
        if target is None:
            return None
        if target == "won":
            return WON, "won"
        if target == "lost":
            return LOST, "lost"
        return target, "open"


def stage_map(pipeline: Pipeline, given: dict) -> StageMap:
    """Check the header's stage_map: every target is "won", "lost" or an open stage of the pipeline."""
    check = Validator()
    explicit = {}
    ids = [s.stage_id for s in pipeline.stages]
    for word, target in given.items():
        target = target.strip()
        ok = target in ("won", "lost") or target in ids
        check.check(ok, f"header.stage_map[{word}]",
                    f"must be won, lost or a stage of pipeline {pipeline.pipeline_id} ({', '.join(ids)})")
        explicit[key_of(word)] = target
    check.raise_if_invalid()
    return StageMap(pipeline, explicit)


@dataclass(frozen=True)
class HistoricalOpportunity:
    """One imported deal, checked and resolved against the reference tables."""

    external_id: str
    name: str
    owner_id: str
    owner_name: str
    manager_id: str
    team: str
    office: str
    stage_id: str
    status: str  # open, won, lost
    account: AccountRow | None
    product: str
    engaged_on: date | None
    closed_on: date | None
    amount: str  # decimal text; "" when unknown
    lost_reason: str


@dataclass
class Quirks:
    """What the reading resolved without rejecting, counted for the import report."""

    product_spellings: dict = field(default_factory=dict)  # as written -> listed name
    rows_by_spelling: dict = field(default_factory=dict)
    unlisted_products: set = field(default_factory=set)
    unlisted_accounts: set = field(default_factory=set)
    owners_without_team: set = field(default_factory=set)
    without_account: int = 0
    zero_lost_values: int = 0

    def notes(self) -> list[str]:
        notes = [f"product {written!r} read as the listed {listed!r} ({self.rows_by_spelling[written]:,} rows)"
                 for written, listed in sorted(self.product_spellings.items())]
        if self.unlisted_products:
            notes.append("products not in the product list, kept as written: "
                         + ", ".join(sorted(self.unlisted_products)))
        if self.unlisted_accounts:
            notes.append(f"{len(self.unlisted_accounts)} accounts not in the accounts file were created by name")
        if self.owners_without_team:
            notes.append(f"owners with no sales team row (no manager or office): "
                         f"{', '.join(sorted(self.owners_without_team))}")
        if self.without_account:
            notes.append(f"{self.without_account:,} opportunities have no account")
        if self.zero_lost_values:
            notes.append(f"{self.zero_lost_values:,} lost opportunities with value 0 were read as amount unknown")
        return notes


def _date(values: dict, name: str) -> date | None:
    text = values.get(name, "")
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).date() if len(text) > 10 else date.fromisoformat(text)
    except ValueError:
        raise RowRejected(name, f"{text!r} is not a date (YYYY-MM-DD)") from None


def opportunity_of(values: dict, stages: StageMap, reference: Reference, quirks: Quirks, owner_ids: dict,
                   default_team: str, today: date) -> HistoricalOpportunity:
    """One row of the opportunities table; raises RowRejected naming the field at fault."""
    external_id = _text(values, "external_id", MAX_EXTERNAL_ID)
    if not external_id:
        raise RowRejected("external_id", "is empty")
    owner = _text(values, "owner")
    if not owner:
        raise RowRejected("owner", "is empty")
    word = values.get("stage", "")
    resolved = stages.resolve(word) if word else None
    if resolved is None:
        raise RowRejected("stage", f"{word!r} is not won, lost or a stage of pipeline "
                                   f"{stages.pipeline.pipeline_id}; map it with stage_map" if word else "is empty")
    stage_id, status = resolved
    engaged_on, closed_on = _date(values, "engaged_on"), _date(values, "closed_on")
    if status != "open" and closed_on is None:
        raise RowRejected("closed_on", f"a {status} opportunity needs its close date")
    if engaged_on and closed_on and closed_on < engaged_on:
        raise RowRejected("closed_on", f"{closed_on} is before the engagement on {engaged_on}")
    if status != "open" and closed_on > today:
        raise RowRejected("closed_on", f"a {status} opportunity cannot close in the future ({closed_on})")
    check = Validator()
    amount = checked_amount(check, values.get("amount", ""), "amount")
    if check.violations:
        raise RowRejected("amount", check.violations[0].description)
    if status == "lost" and amount == Decimal(0):
        quirks.zero_lost_values += 1
        amount = None
    product = _product(_text(values, "product"), reference, quirks)
    account = _account(_text(values, "account"), reference, quirks)
    team_row_ = reference.teams.get(key_of(owner))
    if team_row_ is None and reference.teams:
        quirks.owners_without_team.add(owner)
    manager = team_row_.manager if team_row_ else ""
    name = _text(values, "name") or " - ".join(p for p in (account.name if account else "", product) if p) \
        or external_id
    return HistoricalOpportunity(
        external_id=external_id, name=name, owner_id=owner_ids.get(key_of(owner)) or person_id(owner),
        owner_name=owner, manager_id=person_id(manager) if manager else "",
        team=team_of(manager) if manager else default_team, office=team_row_.office if team_row_ else "",
        stage_id=stage_id, status=status, account=account, product=product, engaged_on=engaged_on,
        closed_on=closed_on, amount=str(amount) if amount is not None else "",
        lost_reason=_text(values, "lost_reason") if status == "lost" else "")


def _product(written: str, reference: Reference, quirks: Quirks) -> str:
    if not written or not reference.products:
        return written
    listed = reference.products.get(key_of(written))
    if listed is None:
        quirks.unlisted_products.add(written)
        return written
    if listed.name != written:
        quirks.product_spellings[written] = listed.name
        quirks.rows_by_spelling[written] = quirks.rows_by_spelling.get(written, 0) + 1
    return listed.name


def _account(written: str, reference: Reference, quirks: Quirks) -> AccountRow | None:
    if not written:
        quirks.without_account += 1
        return None
    listed = reference.accounts.get(key_of(written))
    if listed is None:
        if reference.accounts:
            quirks.unlisted_accounts.add(key_of(written))
        return AccountRow(name=written)
    return listed


def owner_ids_of(given: dict) -> dict:
    """The header's owner name -> user id map, checked."""
    check = Validator()
    for name, user_id in given.items():
        check.check(bool(PRINCIPAL_ID.match(user_id)), f"header.owner_ids[{name}]",
                    "must be a user id: letters, digits, '.', '_' or '-', at most 64")
    check.raise_if_invalid()
    return {key_of(name): user_id for name, user_id in given.items()}
