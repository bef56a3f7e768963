"""Report roll-ups, pure: what one record contributes to the pre-aggregated counts and sums that
reports read, how a period maps to a handful of roll-up documents, and how summed rows are read back.

A roll-up document holds, for one family of records, one filter (a dimension and its value, or none)
and one time bucket (a day or a whole month), per grouping a row per group value of metrics: counts,
exact decimal sums per currency, and histograms. A record's contribution is a pure function of the
record (and of the few fields of its neighbours it reads: a lead's opportunities, an opportunity's
lead's win probability), so the roll-ups stay equal to a recomputation as long as every change of a
record applies ``contribution(new) - contribution(old)``: redelivery changes nothing (the record does
not change), arrival order does not matter (the record's own merge rules decide its state), and a
record that moves from one bucket, owner or stage to another moves its whole contribution.

Families: ``L`` leads by capture day, ``C`` opportunities closed (won or lost) by close day, ``E``
opportunities by the day they were engaged, ``O`` open opportunities by expected close date, ``A``
activities logged by day, ``W`` won deals by account and close day, ``K`` closed deals by account name
and close day (these two by day only: a row lists each deal, or its exact cycle, so a month's
document could outgrow the store's document limit). A lead's finest rows (by
source, medium and campaign) keep every metric, the funnel's too, so a lead report with a second
filter reads the first filter's documents and keeps the rows of the groups that match the second.

Histograms: sales-cycle and stage durations are kept per exact microsecond (so their medians and
means are exact), speed-to-lead and response times in logarithmic bins of 2 % width, read back at the
bin's centre, so any percentile is within 1 % of the exact one.
"""
import math
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import quote

from services.reporting.domain import FUNNEL_ORDER, stage_field
from services.reporting.reports import first_entries

NO_TIME = "-"  # the bucket of records without the moment their family is bucketed by
LEVELS = ("d", "m")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
NEVER = -(10 ** 18)  # the close moment of a won deal without one: before any other, as reports sort it
MOMENT_DIGITS = 19  # a close moment in a won_entry name: microseconds after NEVER
SPEED_BIN_RATIO = 1.02  # bins [r^k, r^(k+1)): read back at 2r^(k+1)/(1+r), within (r-1)/(r+1) < 1 %
FORECAST_CATEGORIES = ("closed", "commit", "best_case", "pipeline")

# Filter dimensions: report filter name -> the record's field, per kind of record.
LEAD_FILTER_FIELDS = {"owner_id": "rep_id", "team": "team", "source": "source", "medium": "medium",
                      "campaign": "campaign"}
FACT_FILTER_FIELDS = {"pipeline_id": "pipeline_id", "team": "team", "owner_id": "owner_id",
                      "manager_id": "manager_id", "office": "office", "product": "product", "source": "source",
                      "medium": "medium", "campaign": "campaign"}
# Groupings kept per family: grouping name -> how a record names its group.
LEAD_GROUPINGS = {"": lambda r: "", "owner": lambda r: r.get("rep_id") or "", "team": lambda r: r.get("team") or "",
                  "source": lambda r: r.get("source") or "",
                  "campaign": lambda r: GROUP_PARTS.join(r.get(k) or "" for k in ("source", "medium", "campaign"))}
FACT_GROUP_FIELDS = {"owner": "owner_id", "manager": "manager_id", "team": "team", "office": "office",
                     "product": "product", "source": "source", "pipeline": "pipeline_id"}
CLOSED_GROUPINGS = {"": lambda r: "", **{name: (lambda r, f=field: r.get(f) or "")
                                        for name, field in FACT_GROUP_FIELDS.items()}}
OWNER_GROUPINGS = {"": lambda r: "", "owner": lambda r: r.get("owner_id") or ""}
ACTIVITY_GROUPINGS = {"by": lambda r: r.get("by") or ""}
ACCOUNT_GROUPINGS = {"account": lambda r: r.get("account_id") or ""}
ACCOUNT_NAME_GROUPINGS = {"account": lambda r: r.get("account_name") or ""}  # as reports group deals
DAY_ONLY_FAMILIES = {"W", "K"}
GROUP_PARTS = "\x1f"  # joins the values of a group named by several fields (source, medium, campaign)
# Which filters a row's group value fixes, per family and grouping: a report with more filters than
# its documents are kept for reads the rows of a grouping that fixes the others (see answers.py).
ROW_DIMENSIONS = {
    "L": {"owner": ("owner_id",), "team": ("team",), "source": ("source",),
          "campaign": ("source", "medium", "campaign")},
    "C": {name: (filter_name,) for name, filter_name in (("owner", "owner_id"), ("manager", "manager_id"),
                                                         ("team", "team"), ("office", "office"),
                                                         ("product", "product"), ("source", "source"),
                                                         ("pipeline", "pipeline_id"))},
    "E": {"owner": ("owner_id",)}, "O": {"owner": ("owner_id",)}, "W": {}, "K": {}, "A": {}}
# Groupings that keep, besides "", the metrics only the whole needs (the funnel's stage reach): a lead
# report under more filters than one (or a rep within a team) reads them from the finest lead rows.
WHOLE_IN_GROUPINGS = {"L": {"campaign"}}


# ---- names -----------------------------------------------------------------------------------------

def field_name(value: str) -> str:
    """A value as one field name: '.' and '$' would be read as a path or an operator."""
    if value == "":
        return "%"
    return value.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def value_of(name: str) -> str:
    if name == "%":
        return ""
    return name.replace("%2E", ".").replace("%24", "$").replace("%25", "%")


def slot_prefix(family: str, filter_name: str, filter_value: str, level: str) -> str:
    """Every document of one family, filter and level shares this prefix, followed by its bucket: a
    period is a range of keys (read through one index), not a list of ids. A document holds every
    grouping's rows (one document per filter, not per filter and grouping: a record's change then
    writes a few dozen documents, not hundreds)."""
    dimension = f"{filter_name}={quote(filter_value, safe='')}" if filter_name else ""
    return f"{family}|{dimension}|{level}|"


def day_ranges(first: date | None, last: date | None) -> list[tuple[str, str, str]]:
    """period_ranges for a family kept by day only: every day of the period; no period at all also
    covers the records without a moment."""
    if first is None and last is None:
        return [("d", "", "~")]
    return [("d", first.isoformat() if first else "0", last.isoformat() if last else "~")]


def buckets_of(moment) -> list[tuple[str, str]]:
    """(level, bucket) pairs a record's moment falls in: its day and its month, or no time at all."""
    if moment is None:
        return [("m", NO_TIME)]
    day = moment.astimezone(timezone.utc).date().isoformat() if isinstance(moment, datetime) else moment
    return [("d", day), ("m", day[:7])]


def _month_end(day: date) -> date:
    following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return following - timedelta(days=1)


def period_ranges(first: date | None, last: date | None) -> list[tuple[str, str, str]]:
    """(level, first bucket, last bucket) ranges covering the days [first, last] (either may be open):
    the days before the first whole month, the whole months, the days after the last whole one. No
    period at all covers every month and the records without a moment."""
    if first is None and last is None:
        return [("m", "", "~")]
    ranges, current = [], first
    if current is not None and current.day != 1:
        stop = _month_end(current) if last is None else min(_month_end(current), last)
        ranges.append(("d", current.isoformat(), stop.isoformat()))
        current = stop + timedelta(days=1)
        if last is not None and current > last:
            return ranges
    lowest = current.isoformat()[:7] if current is not None else "0"  # "0" sorts after NO_TIME
    if last is None:
        ranges.append(("m", lowest, "~"))
        return ranges
    last_whole = last if last == _month_end(last) else last.replace(day=1) - timedelta(days=1)
    if current is None or last_whole >= current:
        ranges.append(("m", lowest, last_whole.isoformat()[:7]))
    if last != _month_end(last):
        tail = last.replace(day=1)
        if current is not None and current > tail:
            tail = current
        ranges.append(("d", tail.isoformat(), last.isoformat()))
    return ranges


# ---- histograms ------------------------------------------------------------------------------------

def speed_bin(seconds: float) -> str:
    if seconds <= 0:
        return "z"
    return str(math.floor(math.log(seconds) / math.log(SPEED_BIN_RATIO)))


def speed_value(name: str) -> float:
    if name == "z":
        return 0.0
    return 2 * SPEED_BIN_RATIO ** (int(name) + 1) / (1 + SPEED_BIN_RATIO)


def exact_bin(later: datetime, earlier: datetime) -> str:
    return str((later - earlier) // timedelta(microseconds=1))


def exact_days(name: str) -> float:
    """The same arithmetic as ``timedelta.total_seconds() / 86400``, so the value is bit for bit the one
    a per-record computation gets."""
    return int(name) / 10 ** 6 / 86400


def expand(histogram: dict, value_of_bin) -> list[float]:
    """Every value a histogram holds, in ascending order (the exact values for exact bins)."""
    values = []
    for name, count in sorted(histogram.items(), key=lambda item: value_of_bin(item[0])):
        if count > 0:
            values.extend([value_of_bin(name)] * int(count))
    return values


# ---- contributions ---------------------------------------------------------------------------------

def _seconds(later, earlier) -> float | None:
    if later is None or earlier is None:
        return None
    return max(0.0, (later - earlier).total_seconds())


def _add(metrics: dict, path: str, amount=1) -> None:
    metrics[path] = metrics.get(path, 0) + amount


def _amount(fact: dict) -> Decimal | None:
    amount = fact.get("amount")
    return Decimal(amount) if amount not in (None, "") else None


def won_entry(fact: dict) -> str:
    """One won deal as a roll-up name: its close moment, id, source and account name, so an account's
    first and last win and the source and name of the first are read back exactly from a sum of rows.
    The moment comes first, as MOMENT_DIGITS digits, so the smallest and largest names of an account
    are its first and last wins (a reader parses two names per account, not all of them)."""
    closed = fact.get("closed_at")
    moment = (closed - EPOCH) // timedelta(microseconds=1) - NEVER if closed is not None else 0
    return field_name(GROUP_PARTS.join((f"{moment:0{MOMENT_DIGITS}d}", fact.get("opportunity_id") or "",
                                        fact.get("source") or "", fact.get("account_name") or "")))


def won_entry_moment(name: str) -> str:
    """The part of a won_entry name that orders it: its close moment."""
    return name[:MOMENT_DIGITS]


def won_entry_values(name: str) -> tuple[datetime | None, str, str, str]:
    """(closed_at, opportunity id, source, account name) of a won_entry name."""
    moment, opportunity_id, source, account_name = value_of(name).split(GROUP_PARTS, 3)
    closed = None if int(moment) == 0 else EPOCH + timedelta(microseconds=int(moment) + NEVER)
    return closed, opportunity_id, source, account_name


def _first_entries(moves: list) -> list[str]:
    """The open stages an opportunity entered, in the order it first entered them."""
    return first_entries([("", move["to"], move["at"]) for move in sorted(moves, key=lambda m: m["at"])])


def lead_metrics(lead: dict) -> tuple[dict, dict]:
    """(metrics every grouping keeps, metrics only the whole keeps) of one lead; ``lead['facts']``
    holds its opportunities when it converted (the funnel's and source report's deals)."""
    base, whole = {"n": 1}, {}
    if lead.get("team"):
        _add(base, f"tm.{field_name(lead['team'])}")
    if (assigned := _seconds(lead.get("assigned_at"), lead.get("captured_at"))) is not None:
        _add(base, f"ha.{speed_bin(assigned)}")
    if (contacted := _seconds(lead.get("contacted_at"), lead.get("captured_at"))) is not None:
        _add(base, f"hc.{speed_bin(contacted)}")
    if (response := _seconds(lead.get("contacted_at"), lead.get("assigned_at"))) is not None:
        _add(base, f"hr.{speed_bin(response)}")
    due = lead.get("first_response_due_at")
    if due is not None:
        completed, breached = lead.get("task_completed_at"), lead.get("sla_breached_at")
        _add(base, "t")
        if completed is not None and completed <= due:
            _add(base, "met")
        if lead.get("sla_warned_at") is not None:
            _add(base, "warn")
        if breached is not None:
            _add(base, "br")
            reassigned = lead.get("reassigned_at")
            if reassigned is not None and reassigned >= breached:
                _add(base, "esc")
        if completed is None and breached is None:
            _add(base, "open")
    if lead.get("qualified_at") is not None:
        _add(base, "mql")
    if lead.get("converted_at") is not None:
        _add(base, "opp")
        for fact in lead.get("facts") or ():
            currency, amount = field_name(fact.get("currency") or ""), _amount(fact)
            _add(base, f"c.{currency}.n")
            if amount is not None:
                _add(base, f"c.{currency}.amt")
            if fact.get("status") == "won":
                _add(base, f"c.{currency}.won")
                if amount is not None:
                    _add(base, f"c.{currency}.wv", amount)
            if fact.get("status") in ("won", "lost"):
                _add(base, f"c.{currency}.cl")
            pipeline = field_name(fact.get("pipeline_id") or "")
            for position, stage in enumerate(_first_entries(fact.get("moves") or [])):
                _add(whole, f"os.{pipeline}.{field_name(stage)}.n")
                _add(whole, f"os.{pipeline}.{field_name(stage)}.p", position)
    for stage in FUNNEL_ORDER:
        if lead.get(stage_field(stage)) is not None:
            _add(whole, f"s.{stage.value}")
    return base, whole


def closed_metrics(fact: dict) -> tuple[dict, dict]:
    currency, amount = field_name(fact.get("currency") or ""), _amount(fact)
    c = f"c.{currency}"
    base, whole = {}, {}
    status = fact["status"]
    _add(base, f"{c}.{status}")
    if amount is not None:
        _add(base, f"{c}.amt")
    if status == "won" and amount is not None:
        _add(base, f"{c}.wa")
        _add(base, f"{c}.wv", amount)
    if fact.get("engaged_at") is not None and fact.get("closed_at") is not None:
        _add(base, f"{c}.{'cw' if status == 'won' else 'cl'}.{exact_bin(fact['closed_at'], fact['engaged_at'])}")
    if status == "lost":
        _add(whole, f"{c}.lr.{field_name(fact.get('lost_reason') or '')}")
    moves = sorted(fact.get("moves") or [], key=lambda m: m["at"])
    spent = defaultdict(timedelta)
    for entered, left in zip(moves, moves[1:], strict=False):
        spent[entered["to"]] += left["at"] - entered["at"]
    order = _first_entries(moves)
    for stage, duration in spent.items():
        if not stage.startswith("closed_"):
            _add(whole, f"{c}.st.{field_name(stage)}.{duration // timedelta(microseconds=1)}")
            _add(whole, f"{c}.sp.{field_name(stage)}", order.index(stage) if stage in order else 0)
    return base, whole


def engaged_metrics(fact: dict) -> tuple[dict, dict]:
    currency, amount = field_name(fact.get("currency") or ""), _amount(fact)
    c = f"c.{currency}"
    base, whole = {f"{c}.n": 1}, {}
    stage = field_name(fact.get("stage_id") or "")
    _add(whole, f"{c}.stg.{stage}.n")
    if amount is not None:
        _add(base, f"{c}.amt")
        _add(whole, f"{c}.stg.{stage}.a", amount)
    return base, whole


def won_metrics(fact: dict) -> tuple[dict, dict]:
    """A won deal in its account's row: counted, valued, and listed (won_entry)."""
    currency, amount = field_name(fact.get("currency") or ""), _amount(fact)
    c = f"c.{currency}"
    base = {f"{c}.n": 1, f"{c}.w.{won_entry(fact)}": 1}
    if amount is not None:
        _add(base, f"{c}.wv", amount)
    return base, {}


def win_weight(fact: dict) -> tuple[Decimal, bool]:
    """The weight of an open opportunity in the forecast: its lead's win probability when the model
    scored it, otherwise the opportunity's own probability."""
    if fact.get("lead_id") and fact.get("win") is not None:
        return Decimal(str(fact["win"])), True
    return Decimal(int(fact.get("probability") or 0)) / 100, False


def open_metrics(fact: dict) -> tuple[dict, dict]:
    currency, amount = field_name(fact.get("currency") or ""), _amount(fact)
    c = f"c.{currency}"
    base, whole = {f"{c}.n": 1}, {}
    if fact.get("team"):
        _add(base, f"{c}.tm.{field_name(fact['team'])}")
    if amount is not None:
        _add(base, f"{c}.amt")
        _add(base, f"{c}.ov", amount)
    category = fact.get("forecast_category") if fact.get("forecast_category") in FORECAST_CATEGORIES else "pipeline"
    weight, from_model = win_weight(fact)
    value = amount or Decimal(0)
    _add(whole, f"{c}.fc.{category}.n")
    _add(whole, f"{c}.fc.{category}.a", value)
    _add(whole, f"{c}.fc.{category}.w", value * weight)
    if from_model:
        _add(whole, f"{c}.fm")
    return base, whole


def _close_day(fact: dict):
    text = fact.get("close_date") or ""
    try:
        return date.fromisoformat(text).isoformat() if text else None
    except ValueError:
        return None


def _spread(contribution: dict, family: str, moment, filters: list, groupings: dict, record: dict,
            metrics: tuple[dict, dict]) -> None:
    base, whole = metrics
    everything = {**base, **whole}
    rows = {}
    for grouping, group_of in groupings.items():
        prefix = f"{field_name(grouping)}.{field_name(group_of(record))}."
        kept = everything if grouping == "" or grouping in WHOLE_IN_GROUPINGS.get(family, ()) else base
        for path, amount in kept.items():
            rows[prefix + path] = amount
    buckets = buckets_of(moment)
    if family in DAY_ONLY_FAMILIES:
        buckets = [("d", bucket) for level, bucket in buckets if level == "d"] or [("d", NO_TIME)]
    for level, bucket in buckets:
        for filter_name, filter_value in filters:
            row = contribution.setdefault(slot_prefix(family, filter_name, filter_value, level) + bucket, {})
            for path, amount in rows.items():
                row[path] = row.get(path, 0) + amount


OWNER_AND_TEAM = "owner_id+team"  # the one pair of filters kept: a manager (team) looking at one rep


def owner_and_team(owner: str, team: str) -> str:
    return f"{owner}\x1f{team}"


def _filters(record: dict, fields: dict) -> list[tuple[str, str]]:
    filters = [("", "")] + [(name, record.get(field) or "") for name, field in fields.items() if record.get(field)]
    owner, team = record.get(fields["owner_id"]), record.get(fields["team"])
    if owner and team:
        filters.append((OWNER_AND_TEAM, owner_and_team(owner, team)))
    return filters


def contribution(kind: str, record: dict | None) -> dict:
    """{roll-up document key: {row path: amount}} of one record (``kind`` L, O or A; an opportunity
    feeds the closed, engaged and open families as its status says). None contributes nothing."""
    if record is None:
        return {}
    out = {}
    if kind == "L":
        _spread(out, "L", record.get("captured_at"), _filters(record, LEAD_FILTER_FIELDS), LEAD_GROUPINGS, record,
                lead_metrics(record))
    elif kind == "O":
        filters = _filters(record, FACT_FILTER_FIELDS)
        if record.get("status") in ("won", "lost"):
            closed = closed_metrics(record)
            _spread(out, "C", record.get("closed_at"), filters, CLOSED_GROUPINGS, record, closed)
            _spread(out, "K", record.get("closed_at"), filters, ACCOUNT_NAME_GROUPINGS, record, (closed[0], {}))
        if record.get("status") == "won" and record.get("account_id"):
            _spread(out, "W", record.get("closed_at"), filters, ACCOUNT_GROUPINGS, record, won_metrics(record))
        _spread(out, "E", record.get("engaged_at"), filters, OWNER_GROUPINGS, record, engaged_metrics(record))
        if record.get("status") == "open":
            _spread(out, "O", _close_day(record), filters, OWNER_GROUPINGS, record, open_metrics(record))
    elif kind == "A":
        _spread(out, "A", record.get("at"), [("", "")], ACTIVITY_GROUPINGS, record, ({"n": 1}, {}))
    return out


def difference(new: dict, old: dict) -> dict:
    """new - old, per document and path; paths that do not change are left out."""
    delta = {}
    for slot in new.keys() | old.keys():
        after, before = new.get(slot, {}), old.get(slot, {})
        changes = {}
        for path in after.keys() | before.keys():
            change = after.get(path, 0) - before.get(path, 0)
            if change:
                changes[path] = change
        if changes:
            delta[slot] = changes
    return delta


def merge_into(total: dict, delta: dict) -> dict:
    for slot, changes in delta.items():
        row = total.setdefault(slot, {})
        for path, change in changes.items():
            row[path] = row.get(path, 0) + change
    return total


def added(rows: dict, changes: dict) -> dict:
    """``rows`` (nested) with ``changes`` ({dotted path: amount}) added; what falls to zero is removed,
    so a group every record has left takes no room."""
    for path, change in changes.items():
        names = path.split(".")
        trail, node = [], rows
        for name in names[:-1]:
            trail.append((node, name))
            node = node.setdefault(name, {})
        value = node.get(names[-1], 0) + change
        if value:
            node[names[-1]] = value
            continue
        node.pop(names[-1], None)
        for parent, name in reversed(trail):
            if parent[name]:
                break
            del parent[name]
    return rows


# ---- reading rows back ------------------------------------------------------------------------------

def add_rows(total: dict, rows: dict) -> None:
    """Sum one document's rows ({group: nested metrics}) into ``total``; sums of money arrive as
    Decimal or as their decimal text (as the store keeps them)."""
    for group, metrics in rows.items():
        _add_nested(total.setdefault(value_of(group), {}), metrics)


def _add_nested(into: dict, metrics: dict) -> None:
    for name, value in metrics.items():
        if isinstance(value, dict):
            _add_nested(into.setdefault(name, {}), value)
        else:
            into[name] = into.get(name, 0) + (Decimal(value) if isinstance(value, str) else value)


def merged(rows: dict) -> dict:
    """Every group's metrics added up: the total of a grouping's rows (each record is in one group)."""
    total = {}
    for metrics in rows.values():
        _add_nested(total, metrics)
    return total


def currencies(metrics: dict, chosen: str) -> list[dict]:
    """The per-currency metrics a report adds up: the chosen currency's and those without one
    (as the per-record path selects them), or all when none is chosen."""
    by_currency = metrics.get("c", {})
    if not chosen:
        return list(by_currency.values())
    return [by_currency[name] for name in (field_name(chosen), field_name("")) if name in by_currency]


def currencies_with_amounts(metrics: dict, counter: str = "amt") -> list[str]:
    return sorted(value_of(name) for name, values in metrics.get("c", {}).items()
                  if name != "%" and values.get(counter, 0) > 0)


def total(parts: list[dict], path: str):
    """The sum of one path (dotted) over per-currency metrics."""
    result = 0
    for part in parts:
        node = part
        for name in path.split("."):
            node = node.get(name, {}) if isinstance(node, dict) else {}
        if not isinstance(node, dict):
            result += node
    return result
