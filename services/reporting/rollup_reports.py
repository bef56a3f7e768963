"""Reports computed from summed roll-up rows, pure: each returns exactly what reports.py computes from
the records (the same dataclasses, the same order), so either path answers and each checks the other.

``rows`` arguments are {group value: metrics} as RollupStore.rows returns them; metrics nest as
rollups.py writes them (``c.<currency>.<metric>``, histograms as {bin: count}).
"""
import statistics
from collections import defaultdict
from decimal import Decimal

from services.reporting import reports
from services.reporting.domain import FUNNEL_ORDER, funnel
from services.reporting.reports import (FORECAST_ORDER, ZERO, AccountValue, Attainment, Cycle, ForecastLine,
                                        RepPerformance, Sla, SourcePerformance, Speed, WinRate)
from services.reporting.rollups import (currencies, currencies_with_amounts, exact_days, expand, merged, speed_value,
                                        total, value_of, won_entry_moment, won_entry_values)


def _sorted_rows(rows: dict, make, order, present=lambda m: m.get("n", 0) > 0) -> list:
    """The rows of groups that hold a record (a group every record left keeps a row of zeros)."""
    return sorted((make(key, metrics) for key, metrics in rows.items() if present(metrics)), key=order)


def _hist(metrics: dict, name: str) -> dict:
    return metrics.get(name) or {}


def _sum_hist(parts: list[dict], name: str) -> dict:
    summed = defaultdict(int)
    for part in parts:
        for bin_name, count in _hist(part, name).items():
            summed[bin_name] += count
    return summed


def ensure_one_currency(metrics: dict, chosen: str, counter: str = "amt") -> None:
    reports.refuse_several_currencies(currencies_with_amounts(metrics, counter), chosen)


# ---- leads -----------------------------------------------------------------------------------------

def funnel_of(whole: dict) -> tuple[list, list]:
    """(funnel steps, opportunity stage rows) from the whole's metrics (the "" grouping)."""
    stages = whole.get("s", {})
    steps = funnel({stage: int(stages.get(stage.value, 0)) for stage in FUNNEL_ORDER})
    reach = []
    for pipeline, by_stage in whole.get("os", {}).items():
        for stage, counts in by_stage.items():
            if counts.get("n", 0) > 0:
                reach.append((value_of(pipeline), value_of(stage), int(counts["n"]), counts.get("p", 0) / counts["n"]))
    reach.sort(key=lambda row: (row[0], row[3], row[1]))
    rows, previous = [], {}
    for pipeline, stage, count, _ in reach:
        before = previous.get(pipeline)
        rows.append((pipeline, stage, count, 1.0 if before is None else (count / before if before else 0.0)))
        previous[pipeline] = count
    return steps, rows


def speed_of(key: str, metrics: dict) -> Speed:
    assigned = expand(_hist(metrics, "ha"), speed_value)
    contacted = expand(_hist(metrics, "hc"), speed_value)
    return Speed(key, int(metrics.get("n", 0)), (len(assigned), *reports.percentiles(assigned)),
                 (len(contacted), *reports.percentiles(contacted)))


def speeds(rows: dict, grouped: bool) -> tuple[Speed, list[Speed]]:
    listed = _sorted_rows(rows, speed_of, lambda r: (-r.leads, r.key)) if grouped else []
    return speed_of("", merged(rows)), listed


def sla_of(key: str, m: dict) -> Sla:
    return Sla(key, int(m.get("t", 0)), int(m.get("met", 0)), int(m.get("warn", 0)), int(m.get("br", 0)),
               int(m.get("esc", 0)), int(m.get("open", 0)))


def sla_compliance(rows: dict, grouped: bool) -> tuple[Sla, list[Sla]]:
    listed = _sorted_rows(rows, sla_of, lambda r: (-r.tasks, r.key)) if grouped else []
    return sla_of("", merged(rows)), listed


def source_performance(rows: dict, costs: dict, by_campaign: bool, currency: str) -> list[SourcePerformance]:
    """``rows``: the "campaign" grouping (source, medium and campaign joined by \\x1f) or "source"."""
    out = []
    for key, m in rows.items():
        if not m.get("n", 0):
            continue
        source, medium, campaign = (key.split("\x1f") + ["", ""])[:3] if by_campaign else (key, "", "")
        parts = currencies(m, currency)
        cost = costs.get((source, campaign)) if by_campaign else costs.get((source, ""))
        if cost is None and not by_campaign:
            campaign_costs = [c for (s, _), c in costs.items() if s == source]
            cost = sum(campaign_costs, ZERO) if campaign_costs else None
        out.append(SourcePerformance(source, medium, campaign, int(m.get("n", 0)), int(m.get("mql", 0)),
                                     int(m.get("opp", 0)), int(total(parts, "won")), Decimal(total(parts, "wv")),
                                     int(total(parts, "cl")), cost))
    out.sort(key=lambda r: (-r.leads, r.source, r.medium, r.campaign))
    return out


def _team_of(teams: dict) -> str:
    names = sorted(value_of(name) for name, count in (teams or {}).items() if count > 0 and name != "%")
    return names[0] if names else ""


def _holding(rows: dict, currency: str, *counters: str) -> set:
    return {key for key, m in rows.items() if any(total(currencies(m, currency), c) for c in counters)}


def people(leads: dict, engaged: dict, closed: dict, open_rows: dict, currency: str) -> set:
    """Everyone with a lead in the period or a deal begun, closed or open (in the currency)."""
    return ({rep for rep, m in leads.items() if rep and m.get("n", 0) > 0} | _holding(engaged, currency, "n")
            | _holding(closed, currency, "won", "lost") | _holding(open_rows, currency, "n"))


def rep_performance(leads: dict, activities: dict, engaged: dict, closed: dict, open_rows: dict,
                    currency: str) -> list[RepPerformance]:
    """Per rep, from the owner groupings of leads, engaged, closed and open opportunities, and
    ``activities`` {rep: count} as the per-record path selects them; the team is reports.team_of's."""
    out = []
    for rep_id in people(leads, engaged, closed, open_rows, currency) | set(activities):
        lead = leads.get(rep_id, {}) if rep_id else {}
        responses = expand(_hist(lead, "hr"), speed_value)
        won_parts = currencies(closed.get(rep_id, {}), currency)
        open_parts = currencies(open_rows.get(rep_id, {}), currency)
        open_teams = defaultdict(int)
        for part in open_parts:
            for name, count in part.get("tm", {}).items():
                open_teams[name] += count
        team = _team_of(lead.get("tm")) or _team_of(open_teams)
        out.append(RepPerformance(
            rep_id, team, int(lead.get("n", 0)), float(statistics.median(responses)) if responses else 0.0,
            int(activities.get(rep_id, 0)), int(total(currencies(engaged.get(rep_id, {}), currency), "n")),
            int(total(won_parts, "won")), Decimal(total(won_parts, "wv")),
            int(total(won_parts, "won") + total(won_parts, "lost")), Decimal(total(open_parts, "ov"))))
    out.sort(key=lambda row: (-row.won_value, -row.leads, row.rep_id))
    return out


# ---- opportunities ----------------------------------------------------------------------------------

def win_rate_of(key: str, m: dict, currency: str) -> WinRate:
    parts = currencies(m, currency)
    won, lost = int(total(parts, "won")), int(total(parts, "lost"))
    closed = won + lost
    return WinRate(key, closed, won, lost, won / closed if closed else 0.0, Decimal(total(parts, "wv")))


def win_rates(rows: dict, grouped: bool, currency: str) -> tuple[WinRate, list[WinRate]]:
    listed = sorted((win_rate_of(k, rows[k], currency) for k in _holding(rows, currency, "won", "lost")),
                    key=lambda r: (-r.closed, r.key)) if grouped else []
    return win_rate_of("", merged(rows), currency), listed


def cycle_of(key: str, m: dict, currency: str) -> Cycle:
    parts = currencies(m, currency)
    won = expand(_sum_hist(parts, "cw"), int)
    lost = expand(_sum_hist(parts, "cl"), int)
    won, lost = [exact_days(str(v)) for v in won], [exact_days(str(v)) for v in lost]
    return Cycle(key, len(won), statistics.fmean(won) if won else 0.0, statistics.median(won) if won else 0.0,
                 len(lost), statistics.fmean(lost) if lost else 0.0, statistics.median(lost) if lost else 0.0)


def sales_cycles(rows: dict, grouped: bool, currency: str) -> tuple[Cycle, list[Cycle]]:
    listed = sorted((cycle_of(k, rows[k], currency) for k in _holding(rows, currency, "won", "lost")),
                    key=lambda r: (-(r.won + r.lost), r.key)) if grouped else []
    return cycle_of("", merged(rows), currency), listed


def stage_times(whole: dict, currency: str) -> list[tuple[str, int, float, float]]:
    parts = currencies(whole, currency)
    spent, positions = defaultdict(list), defaultdict(int)
    for part in parts:
        for stage, histogram in part.get("st", {}).items():
            spent[stage].extend(exact_days(str(v)) for v in expand(histogram, int))
        for stage, position in part.get("sp", {}).items():
            positions[stage] += position
    rows = [(value_of(stage), len(days), statistics.fmean(days), statistics.median(days), positions[stage] / len(days))
            for stage, days in spent.items() if days]
    rows.sort(key=lambda row: (row[4], row[0]))
    return [row[:4] for row in rows]


def loss_reasons(whole: dict, currency: str) -> tuple[list, int]:
    counts = defaultdict(int)
    for part in currencies(whole, currency):
        for reason, n in part.get("lr", {}).items():
            counts[value_of(reason)] += n
    lost = sum(counts.values())
    rows = sorted(((reason, int(n), n / lost) for reason, n in counts.items() if n), key=lambda r: (-r[1], r[0]))
    return rows, int(lost)


def stage_summary(whole: dict, currency: str) -> tuple[list, int]:
    by_stage = defaultdict(lambda: [0, ZERO])
    for part in currencies(whole, currency):
        for stage, m in part.get("stg", {}).items():
            by_stage[value_of(stage)][0] += int(m.get("n", 0))
            by_stage[value_of(stage)][1] += Decimal(m.get("a", 0))
    rows = sorted(((stage, n, amount) for stage, (n, amount) in by_stage.items() if n), key=lambda r: (-r[1], r[0]))
    return rows, sum(n for _, n, _ in rows)


def forecast(open_whole: dict, closed_whole: dict, currency: str) -> tuple[list[ForecastLine], int]:
    lines = {category: [0, ZERO, ZERO] for category in FORECAST_ORDER}
    from_model = 0
    for part in currencies(open_whole, currency):
        from_model += int(part.get("fm", 0))
        for category, m in part.get("fc", {}).items():
            line = lines[category]
            line[0] += int(m.get("n", 0))
            line[1] += Decimal(m.get("a", 0))
            line[2] += Decimal(m.get("w", 0))
    won = currencies(closed_whole, currency)
    won_value = Decimal(total(won, "wv"))
    lines["closed"] = [int(total(won, "won")), won_value, won_value]
    return [ForecastLine(c, n, amount, weighted.quantize(Decimal("0.01")))
            for c, (n, amount, weighted) in lines.items()], from_model


def attainment(quota, closed_whole: dict, open_whole: dict, currency: str) -> Attainment:
    """``currency``: the scope's (the service asks in the quota's currency)."""
    lines, _ = forecast(open_whole, {}, currency)
    weighted = sum((line.weighted for line in lines if line.category != "closed"), ZERO)
    return Attainment(quota, Decimal(total(currencies(closed_whole, currency), "wv")), weighted)


def account_values(rows: dict, currency: str) -> list[AccountValue]:
    """``rows``: the W family's account grouping, {account id: metrics}."""
    out = []
    for account_id, m in rows.items():
        parts = currencies(m, currency)
        # Each won deal is one name counted once; a deal that left the account (or the filter) is at 0.
        names = [name for part in parts for name, n in part.get("w", {}).items() if n > 0]
        if not account_id or not names:
            continue
        # The first win: the earliest moment, then the smallest id, as reports.account_values orders them.
        earliest = won_entry_moment(min(names))
        first = min((won_entry_values(name) for name in names if won_entry_moment(name) == earliest),
                    key=lambda win: win[1])
        wins = len(names)
        out.append(AccountValue(account_id, first[3], wins, Decimal(total(parts, "wv")), wins - 1, first[0],
                                won_entry_values(max(names))[0], first[2]))
    out.sort(key=lambda r: (-r.won_value, r.account_name, r.account_id))
    return out
