"""The report maths, pure: filters checked, opportunities grouped and counted. The repository reads
the opportunity facts a filter selects; everything a manager reads is computed here, so it can be
checked against an independent computation over the same records.

Money is Decimal throughout (never a float), and amounts in different currencies are never added up.
"""
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from services.common.auth import Principal, Role
from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument, PermissionDenied, Validator
from services.common.money import checked_amount, checked_currency

GROUP_FIELDS = {"owner": "owner_id", "manager": "manager_id", "team": "team", "office": "office",
                "product": "product", "source": "source", "account": "account_name", "pipeline": "pipeline_id"}
FORECAST_ORDER = ("closed", "commit", "best_case", "pipeline")
ZERO = Decimal(0)


# Which filter fields each kind of record has: opportunities (their facts) and leads (their progress).
FACT_FILTERS = {"pipeline_id": "pipeline_id", "team": "team", "owner_id": "owner_id", "manager_id": "manager_id",
                "office": "office", "product": "product", "source": "source", "medium": "medium",
                "campaign": "campaign"}
LEAD_FILTERS = {"owner_id": "rep_id", "team": "team", "source": "source", "medium": "medium", "campaign": "campaign"}
LEAD_GROUPS = {"owner": "rep_id", "team": "team", "source": "source"}


@dataclass(frozen=True)
class Filter:
    """A checked ReportFilter: the period as UTC instants [start, end), and equality filters."""

    start: datetime | None = None
    end: datetime | None = None
    equal: tuple = ()  # (filter field, value) pairs
    currency: str = ""

    def query(self, fields: dict) -> dict:
        """The equality conditions that apply to one kind of record, by its field names; a filter on a
        field that kind does not have (medium on an opportunity) matches nothing rather than everything."""
        query = {}
        for name, value in self.equal:
            if name in fields:
                query[fields[name]] = value
            else:
                query["_no_such_field"] = value
        return query

    def window(self) -> dict:
        window = {}
        if self.start:
            window["$gte"] = self.start
        if self.end:
            window["$lt"] = self.end
        return window

    @property
    def start_day(self) -> str:
        return self.start.date().isoformat() if self.start else ""

    @property
    def last_day(self) -> str:
        return (self.end - timedelta(days=1)).date().isoformat() if self.end else ""


@dataclass(frozen=True)
class Fact:
    """One opportunity as reporting knows it (the latest snapshot its events carried)."""

    opportunity_id: str
    status: str
    stage_id: str = ""
    owner_id: str = ""
    manager_id: str = ""
    team: str = ""
    office: str = ""
    product: str = ""
    source: str = ""
    account_id: str = ""
    account_name: str = ""
    pipeline_id: str = ""
    lead_id: str = ""
    amount: Decimal | None = None
    currency: str = ""
    probability: int = 0
    forecast_category: str = ""
    engaged_at: datetime | None = None
    closed_at: datetime | None = None
    lost_reason: str = ""
    moves: tuple = ()  # (from stage, to stage, at)


def _day(text: str, where: str, violations: list) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        violations.append(FieldViolation(where, "must be a date, YYYY-MM-DD"))
        return None


def checked_filter(values: dict, principal: Principal) -> Filter:
    """``values``: the ReportFilter's fields. A rep's numbers are their own, a manager's their team's:
    asking for someone else's is PERMISSION_DENIED, asking for nothing narrows to what they may see."""
    violations = []
    first = _day(values.get("period_start", "").strip(), "filter.period_start", violations)
    last = _day(values.get("period_end", "").strip(), "filter.period_end", violations)
    if first and last and last < first:
        violations.append(FieldViolation("filter.period_end", "is before period_start"))
    currency = values.get("currency", "").strip().upper()
    if currency:
        check = Validator()
        checked_currency(check, currency, "filter.currency")
        violations += check.violations
    if violations:
        raise InvalidArgument(violations)
    equal = {name: values.get(name, "").strip() for name in
             ("pipeline_id", "team", "owner_id", "manager_id", "office", "product", "medium", "campaign")}
    equal["source"] = values.get("source", "").strip().lower()
    if principal.role == Role.REP:
        if equal["owner_id"] not in ("", principal.id):
            raise PermissionDenied("a rep sees their own numbers only")
        equal["owner_id"] = principal.id
    elif principal.role == Role.MANAGER:
        if equal["team"] not in ("", principal.team):
            raise PermissionDenied("a manager sees their own team's numbers only")
        equal["team"] = principal.team
    start = datetime.combine(first, time(0), tzinfo=timezone.utc) if first else None
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=timezone.utc) if last else None
    return Filter(start, end, tuple((k, v) for k, v in equal.items() if v), currency)


def _money(facts, attribute: str = "amount") -> Decimal:
    return sum((getattr(f, attribute) for f in facts if getattr(f, attribute) is not None), ZERO)


def ensure_one_currency(facts: list, chosen: str) -> None:
    """Amounts are added up only within one currency; several without a choice cannot be."""
    refuse_several_currencies({f.currency for f in facts if f.currency and f.amount is not None}, chosen)


def refuse_several_currencies(currencies, chosen: str) -> None:
    """FAILED_PRECONDITION when amounts in several currencies would be added up without a choice."""
    if not chosen and len(set(currencies)) > 1:
        raise FailedPrecondition(f"the amounts are in several currencies ({', '.join(sorted(set(currencies)))}); "
                                 "filter by one with filter.currency")


def groups(facts: list, group_by: str) -> dict:
    """{group key: facts}; without a grouping, no rows."""
    if not group_by:
        return {}
    field = GROUP_FIELDS[group_by]
    grouped = defaultdict(list)
    for fact in facts:
        grouped[getattr(fact, field)].append(fact)
    return grouped


@dataclass(frozen=True)
class WinRate:
    key: str
    closed: int
    won: int
    lost: int
    win_rate: float
    won_value: Decimal


def win_rate_of(key: str, facts: list) -> WinRate:
    won = [f for f in facts if f.status == "won"]
    lost = sum(1 for f in facts if f.status == "lost")
    closed = len(won) + lost
    return WinRate(key, closed, len(won), lost, len(won) / closed if closed else 0.0, _money(won))


def win_rates(closed_facts: list, group_by: str) -> tuple[WinRate, list[WinRate]]:
    rows = [win_rate_of(key, facts) for key, facts in groups(closed_facts, group_by).items()]
    rows.sort(key=lambda r: (-r.closed, r.key))
    return win_rate_of("", closed_facts), rows


@dataclass(frozen=True)
class Cycle:
    key: str
    won: int
    won_mean_days: float
    won_median_days: float
    lost: int
    lost_mean_days: float
    lost_median_days: float


def days_to_close(fact: Fact) -> float | None:
    if fact.engaged_at is None or fact.closed_at is None:
        return None
    return (fact.closed_at - fact.engaged_at).total_seconds() / 86400


def cycle_of(key: str, facts: list) -> Cycle:
    def days(status):
        return [d for f in facts if f.status == status and (d := days_to_close(f)) is not None]
    won, lost = days("won"), days("lost")
    return Cycle(key, len(won), statistics.fmean(won) if won else 0.0, statistics.median(won) if won else 0.0,
                 len(lost), statistics.fmean(lost) if lost else 0.0, statistics.median(lost) if lost else 0.0)


def sales_cycles(closed_facts: list, group_by: str) -> tuple[Cycle, list[Cycle]]:
    rows = [cycle_of(key, facts) for key, facts in groups(closed_facts, group_by).items()]
    rows.sort(key=lambda r: (-(r.won + r.lost), r.key))
    return cycle_of("", closed_facts), rows


def stage_times(facts: list) -> list[tuple[str, int, float, float]]:
    """(stage, opportunities, mean days, median days) of the time spent in each open stage: a stage
    entered by one move lasts until the next move; visits to one stage add up. Closed outcomes are
    not stages one spends time in. Stages in the order opportunities enter them (their mean position
    among the stages each one entered)."""
    per_stage, positions = defaultdict(list), defaultdict(int)
    for fact in facts:
        moves = sorted(fact.moves, key=lambda move: move[2])
        spent = defaultdict(timedelta)
        for (_, stage, entered), (_, _, left) in zip(moves, moves[1:], strict=False):
            spent[stage] += left - entered
        order = first_entries(moves)
        for stage, duration in spent.items():
            if not stage.startswith("closed_"):
                per_stage[stage].append(duration.total_seconds() / 86400)
                positions[stage] += order.index(stage)
    rows = sorted(per_stage.items(), key=lambda item: (positions[item[0]] / len(item[1]), item[0]))
    return [(stage, len(days), statistics.fmean(days), statistics.median(days)) for stage, days in rows]


def first_entries(moves: list) -> list[str]:
    """The open stages of time-ordered (from, to, at) moves, in the order they were first entered."""
    seen = []
    for _, stage, _ in moves:
        if not stage.startswith("closed_") and stage not in seen:
            seen.append(stage)
    return seen


def stage_reach(facts: list) -> list[tuple[str, str, int, float]]:
    """(pipeline, stage, opportunities that reached it, conversion from the previous stage) per
    pipeline, stages in the order opportunities enter them (by their usual position)."""
    reached, positions = defaultdict(set), defaultdict(list)
    for fact in facts:
        for position, stage in enumerate(first_entries(sorted(fact.moves, key=lambda move: move[2]))):
            reached[(fact.pipeline_id, stage)].add(fact.opportunity_id)
            positions[(fact.pipeline_id, stage)].append(position)
    order = sorted(reached, key=lambda key: (key[0], statistics.fmean(positions[key]), key[1]))
    rows, previous = [], {}
    for pipeline, stage in order:
        count = len(reached[(pipeline, stage)])
        before = previous.get(pipeline)
        rows.append((pipeline, stage, count, 1.0 if before is None else (count / before if before else 0.0)))
        previous[pipeline] = count
    return rows


def loss_reasons(closed_facts: list) -> tuple[list[tuple[str, int, float]], int]:
    counts = defaultdict(int)
    for fact in closed_facts:
        if fact.status == "lost":
            counts[fact.lost_reason] += 1
    lost = sum(counts.values())
    rows = sorted(((reason, n, n / lost) for reason, n in counts.items()), key=lambda r: (-r[1], r[0]))
    return rows, lost


@dataclass(frozen=True)
class AccountValue:
    account_id: str
    account_name: str
    won_deals: int
    won_value: Decimal
    repeat_deals: int
    first_won_at: datetime | None
    last_won_at: datetime | None
    acquisition_source: str


def account_values(closed_facts: list) -> list[AccountValue]:
    by_account = defaultdict(list)
    for fact in closed_facts:
        if fact.status == "won" and fact.account_id:
            by_account[fact.account_id].append(fact)
    rows = []
    for account_id, wins in by_account.items():
        wins.sort(key=lambda f: (f.closed_at or datetime.min.replace(tzinfo=timezone.utc), f.opportunity_id))
        rows.append(AccountValue(account_id, wins[0].account_name, len(wins), _money(wins), len(wins) - 1,
                                 wins[0].closed_at, wins[-1].closed_at, wins[0].source))
    rows.sort(key=lambda r: (-r.won_value, r.account_name, r.account_id))
    return rows


@dataclass(frozen=True)
class ForecastLine:
    category: str
    opportunities: int
    amount: Decimal
    weighted: Decimal


def forecast(open_facts: list, won_facts: list, win_probabilities: dict) -> tuple[list[ForecastLine], int]:
    """``win_probabilities``: {lead id: the win model's probability (0..1)}; an open opportunity
    from a scored lead is weighted by it, any other by its probability (the stage's or an override)."""
    lines = {category: [0, ZERO, ZERO] for category in FORECAST_ORDER}
    from_model = 0
    for fact in open_facts:
        category = fact.forecast_category if fact.forecast_category in lines else "pipeline"
        amount = fact.amount or ZERO
        model = win_probabilities.get(fact.lead_id) if fact.lead_id else None
        if model is not None:
            from_model += 1
            weight = Decimal(str(model))
        else:
            weight = Decimal(fact.probability) / 100
        line = lines[category]
        line[0] += 1
        line[1] += amount
        line[2] += amount * weight
    won_value = _money(won_facts)
    lines["closed"] = [len(won_facts), won_value, won_value]
    return [ForecastLine(c, n, amount, weighted.quantize(Decimal("0.01")))
            for c, (n, amount, weighted) in lines.items()], from_model


def stage_summary(facts: list) -> list[tuple[str, int, Decimal]]:
    by_stage = defaultdict(list)
    for fact in facts:
        by_stage[fact.stage_id].append(fact)
    return sorted(((stage, len(items), _money(items)) for stage, items in by_stage.items()),
                  key=lambda r: (-r[1], r[0]))


# ---- lead reports --------------------------------------------------------------------------------

@dataclass(frozen=True)
class LeadRow:
    """One lead's progress as reporting projected it."""

    lead_id: str
    source: str = ""
    medium: str = ""
    campaign: str = ""
    rep_id: str = ""
    team: str = ""
    captured_at: datetime | None = None
    qualified_at: datetime | None = None
    assigned_at: datetime | None = None
    contacted_at: datetime | None = None
    converted_at: datetime | None = None
    first_response_due_at: datetime | None = None
    task_completed_at: datetime | None = None
    sla_warned_at: datetime | None = None
    sla_breached_at: datetime | None = None
    reassigned_at: datetime | None = None


def percentiles(values: list) -> tuple[float, float, float]:
    """Median, p90 and p99 (linear between ranks); zeros when there is nothing to measure."""
    if not values:
        return 0.0, 0.0, 0.0
    if len(values) == 1:
        return (float(values[0]),) * 3
    deciles = statistics.quantiles(values, n=10, method="inclusive")
    centiles = statistics.quantiles(values, n=100, method="inclusive")
    return float(statistics.median(values)), deciles[8], centiles[98]


@dataclass(frozen=True)
class Speed:
    key: str
    leads: int
    to_assignment: tuple  # (measured, p50, p90, p99)
    to_contact: tuple


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return max(0.0, (later - earlier).total_seconds())


def speed_of(key: str, leads: list) -> Speed:
    assigned = [d for lead in leads if (d := _seconds(lead.assigned_at, lead.captured_at)) is not None]
    contacted = [d for lead in leads if (d := _seconds(lead.contacted_at, lead.captured_at)) is not None]
    return Speed(key, len(leads), (len(assigned), *percentiles(assigned)), (len(contacted), *percentiles(contacted)))


def checked_lead_grouping(group_by: str) -> str:
    if group_by and group_by not in LEAD_GROUPS:
        raise InvalidArgument([FieldViolation("group_by", "leads group by owner, team or source")])
    return group_by


def lead_groups(leads: list, group_by: str) -> dict:
    if not checked_lead_grouping(group_by):
        return {}
    grouped = defaultdict(list)
    for lead in leads:
        grouped[getattr(lead, LEAD_GROUPS[group_by])].append(lead)
    return grouped


def speeds(leads: list, group_by: str) -> tuple[Speed, list[Speed]]:
    rows = sorted((speed_of(k, v) for k, v in lead_groups(leads, group_by).items()), key=lambda r: (-r.leads, r.key))
    return speed_of("", leads), rows


@dataclass(frozen=True)
class Sla:
    key: str
    tasks: int
    met: int
    warned: int
    breached: int
    escalated: int
    open: int

    @property
    def met_share(self) -> float:
        return self.met / self.tasks if self.tasks else 0.0

    @property
    def breached_share(self) -> float:
        return self.breached / self.tasks if self.tasks else 0.0


def sla_of(key: str, leads: list) -> Sla:
    tasks = [lead for lead in leads if lead.first_response_due_at is not None]
    met = sum(1 for t in tasks if t.task_completed_at is not None and t.task_completed_at <= t.first_response_due_at)
    breached = [t for t in tasks if t.sla_breached_at is not None]
    escalated = sum(1 for t in breached if t.reassigned_at is not None and t.reassigned_at >= t.sla_breached_at)
    still_open = sum(1 for t in tasks if t.task_completed_at is None and t.sla_breached_at is None)
    return Sla(key, len(tasks), met, sum(1 for t in tasks if t.sla_warned_at is not None), len(breached), escalated,
               still_open)


def sla_compliance(leads: list, group_by: str) -> tuple[Sla, list[Sla]]:
    rows = sorted((sla_of(k, v) for k, v in lead_groups(leads, group_by).items()), key=lambda r: (-r.tasks, r.key))
    return sla_of("", leads), rows


@dataclass(frozen=True)
class SourcePerformance:
    source: str
    medium: str
    campaign: str
    leads: int
    mqls: int
    opportunities: int
    won: int
    won_value: Decimal
    closed: int
    cost: Decimal | None

    @property
    def cost_per_won(self) -> Decimal | None:
        return (self.cost / self.won).quantize(Decimal("0.01")) if self.cost is not None and self.won else None


def source_performance(leads: list, facts_by_lead: dict, costs: dict, by_campaign: bool) -> list[SourcePerformance]:
    """``facts_by_lead``: {lead id: its opportunity facts}; ``costs``: {(source, campaign): Decimal}, a
    campaign "" being the whole source's cost."""
    grouped = defaultdict(list)
    for lead in leads:
        grouped[(lead.source, lead.medium, lead.campaign) if by_campaign else (lead.source, "", "")].append(lead)
    rows = []
    for (source, medium, campaign), members in grouped.items():
        facts = [f for lead in members for f in facts_by_lead.get(lead.lead_id, ())]
        won = [f for f in facts if f.status == "won"]
        cost = costs.get((source, campaign)) if by_campaign else costs.get((source, ""))
        if cost is None and not by_campaign:
            campaign_costs = [c for (s, _), c in costs.items() if s == source]
            cost = sum(campaign_costs, ZERO) if campaign_costs else None
        rows.append(SourcePerformance(
            source, medium, campaign, len(members), sum(1 for m in members if m.qualified_at is not None),
            sum(1 for m in members if m.converted_at is not None), len(won), _money(won),
            sum(1 for f in facts if f.status in ("won", "lost")), cost))
    rows.sort(key=lambda r: (-r.leads, r.source, r.medium, r.campaign))
    return rows


@dataclass(frozen=True)
class RepPerformance:
    rep_id: str
    team: str
    leads: int
    median_response_seconds: float
    activities: int
    opportunities: int
    won: int
    won_value: Decimal
    closed: int
    open_pipeline: Decimal


def team_of(teams: set) -> str:
    """A rep's team in their row: of their leads in the period (else of their open deals); a rep who
    moved teams has several, and the first by name is shown, whichever record was read first."""
    named = sorted(team for team in teams if team)
    return named[0] if named else ""


def rep_performance(leads: list, activities: dict, engaged: list, closed: list, open_facts: list) -> list:
    """Per rep: ``activities`` {rep: count}; ``engaged`` their opportunities begun in the period,
    ``closed`` those closed in it, ``open_facts`` everything still open."""
    reps = defaultdict(lambda: {"leads": [], "engaged": 0, "won": [], "closed": 0, "open": [], "teams": set(),
                                "open_teams": set()})
    for lead in leads:
        if lead.rep_id:
            reps[lead.rep_id]["leads"].append(lead)
            reps[lead.rep_id]["teams"].add(lead.team)
    for fact in engaged:
        reps[fact.owner_id]["engaged"] += 1
    for fact in closed:
        reps[fact.owner_id]["closed"] += 1
        if fact.status == "won":
            reps[fact.owner_id]["won"].append(fact)
    for fact in open_facts:
        reps[fact.owner_id]["open"].append(fact)
        reps[fact.owner_id]["open_teams"].add(fact.team)
    for rep_id in activities:
        reps[rep_id]  # a rep who only logged activities is listed too
    rows = []
    for rep_id, r in reps.items():
        responses = [d for lead in r["leads"] if (d := _seconds(lead.contacted_at, lead.assigned_at)) is not None]
        rows.append(RepPerformance(
            rep_id, team_of(r["teams"]) or team_of(r["open_teams"]), len(r["leads"]),
            float(statistics.median(responses)) if responses else 0.0,
            activities.get(rep_id, 0), r["engaged"], len(r["won"]), _money(r["won"]), r["closed"], _money(r["open"])))
    rows.sort(key=lambda row: (-row.won_value, -row.leads, row.rep_id))
    return rows


def checked_cost(source: str, campaign: str, amount: str, currency: str) -> tuple:
    check = Validator()
    source, campaign = source.strip().lower(), campaign.strip()
    check.required(source, "source")
    value = checked_amount(check, amount, "amount") if check.required(amount.strip(), "amount") else None
    currency = checked_currency(check, currency, "currency")
    check.raise_if_invalid()
    return source, campaign, value, currency


@dataclass(frozen=True)
class QuotaInput:
    owner_id: str
    team: str
    period_start: str
    period_end: str
    amount: Decimal
    currency: str


def checked_quota(owner_id: str, team: str, period_start: str, period_end: str, amount: str, currency: str,
                  principal: Principal) -> QuotaInput:
    """A rep's quota (owner_id, with the rep's team) or a team's (team alone). A manager sets those of
    their own team only, and a rep quota they set is in their team."""
    violations = []
    owner_id, team = owner_id.strip(), team.strip()
    if principal.role == Role.MANAGER:
        if team not in ("", principal.team):
            raise PermissionDenied("a manager sets their own team's quotas only")
        team = principal.team
    if not owner_id and not team:
        violations.append(FieldViolation("quota.owner_id", "set a rep (owner_id) or a team"))
    first = _day(period_start.strip(), "quota.period_start", violations)
    last = _day(period_end.strip(), "quota.period_end", violations)
    if not period_start.strip():
        violations.append(FieldViolation("quota.period_start", "is required"))
    if not period_end.strip():
        violations.append(FieldViolation("quota.period_end", "is required"))
    if first and last and last < first:
        violations.append(FieldViolation("quota.period_end", "is before period_start"))
    check = Validator()
    value = checked_amount(check, amount, "quota.amount")
    if not check.violations:
        check.check(value is not None and value > 0, "quota.amount", "must be a positive amount, e.g. 250000")
    currency = checked_currency(check, currency, "quota.currency")
    violations += check.violations
    if violations:
        raise InvalidArgument(violations)
    return QuotaInput(owner_id, team, first.isoformat(), last.isoformat(), value, currency)


@dataclass(frozen=True)
class Attainment:
    quota: QuotaInput
    won_value: Decimal
    weighted_pipeline: Decimal

    @property
    def attainment(self) -> float:
        return float(self.won_value / self.quota.amount)

    @property
    def projected(self) -> float:
        return float((self.won_value + self.weighted_pipeline) / self.quota.amount)


def attainment(quota: QuotaInput, won: list, open_facts: list, win_probabilities: dict) -> Attainment:
    """``won``: the quota holder's deals won in its period (its currency); ``open_facts``: theirs
    expected to close in it."""
    lines, _ = forecast(open_facts, [], win_probabilities)
    weighted = sum((line.weighted for line in lines if line.category != "closed"), ZERO)
    return Attainment(quota, _money(won), weighted)


def text(amount: Decimal) -> str:
    """Decimal text without exponent (1E+3 would surprise a spreadsheet)."""
    return format(amount.normalize(), "f") if amount == amount.to_integral() else format(amount, "f")
