"""The two ways reporting answers a report: from the records (every lead and opportunity a filter
selects, read and computed in Python) and from the roll-ups (a handful of pre-aggregated documents per
period). Both return the same values; the roll-ups answer whenever they cover the question (a period
and at most one filter), the records answer the rest, and ``verify`` asks both and lists differences.
"""
from dataclasses import fields, is_dataclass
from datetime import timedelta
from decimal import Decimal

from services.common.errors import FailedPrecondition
from services.reporting import reports, rollup_reports
from services.reporting.domain import funnel
from services.reporting.rollups import (FACT_FILTER_FIELDS, GROUP_PARTS, LEAD_FILTER_FIELDS, OWNER_AND_TEAM,
                                       ROW_DIMENSIONS, WHOLE_IN_GROUPINGS, add_rows, currencies_with_amounts,
                                       field_name, owner_and_team)

ROLLED_FACT_GROUPS = {"", "owner", "manager", "team", "office", "product", "source", "pipeline", "account"}
CATCH_UP_SECONDS = 2.0  # what a report spends applying marked records before it reads
VERIFY_CATCH_UP_SECONDS = 60.0


class FromRecords:
    """Reports computed from every record the filter selects (reports.py)."""

    def __init__(self, read_models):
        self.read = read_models

    def funnel(self, report_filter):
        counts, converted = self.read.stage_counts(report_filter)
        facts = [f for found in self.read.facts_of_leads(converted).values() for f in found]
        return funnel(counts), reports.stage_reach(facts)

    def speed(self, report_filter, group_by: str):
        return reports.speeds(self.read.lead_rows(report_filter), group_by)

    def sla(self, report_filter, group_by: str):
        return reports.sla_compliance(self.read.lead_rows(report_filter), group_by)

    def source_performance(self, report_filter, by_campaign: bool):
        leads = self.read.lead_rows(report_filter)
        facts_by_lead = self.read.facts_of_leads([lead.lead_id for lead in leads if lead.converted_at])
        if report_filter.currency:
            facts_by_lead = {lead: [f for f in facts if f.currency in (report_filter.currency, "")]
                             for lead, facts in facts_by_lead.items()}
        reports.ensure_one_currency([f for facts in facts_by_lead.values() for f in facts], report_filter.currency)
        return reports.source_performance(leads, facts_by_lead, self.read.campaign_costs(report_filter.currency),
                                          by_campaign)

    def closed(self, report_filter, **status):
        return self.read.facts(report_filter, "closed_at", **(status or {"status": {"$in": ["won", "lost"]}}))

    def rep_performance(self, report_filter):
        leads = self.read.lead_rows(report_filter)
        engaged = self.read.facts(report_filter, "engaged_at")
        closed = self.closed(report_filter)
        reports.ensure_one_currency(closed, report_filter.currency)
        open_facts = self.read.facts(report_filter, "", status="open")
        reports.ensure_one_currency(open_facts, report_filter.currency)
        people = {lead.rep_id for lead in leads} | {f.owner_id for f in engaged + closed + open_facts}
        activities = {rep: n for rep, n in self.read.activities_by_rep(report_filter).items()
                      if rep in people or not report_filter.equal}
        return reports.rep_performance(leads, activities, engaged, closed, open_facts)

    def win_rate(self, report_filter, group_by: str):
        closed = self.closed(report_filter)
        reports.ensure_one_currency(closed, report_filter.currency)
        return reports.win_rates(closed, group_by)

    def sales_cycle(self, report_filter, group_by: str):
        closed = self.closed(report_filter)
        total, rows = reports.sales_cycles(closed, group_by)
        return total, rows, reports.stage_times(closed)

    def loss_reasons(self, report_filter):
        return reports.loss_reasons(self.closed(report_filter, status="lost"))

    def pipeline_summary(self, report_filter):
        facts = self.read.facts(report_filter, "engaged_at")
        reports.ensure_one_currency(facts, report_filter.currency)
        return reports.stage_summary(facts), len(facts)

    def forecast(self, report_filter):
        open_facts = self.read.open_facts_closing_within(report_filter)
        won = self.closed(report_filter, status="won")
        reports.ensure_one_currency(open_facts + won, report_filter.currency)
        probabilities = self.read.win_probabilities([f.lead_id for f in open_facts if f.lead_id])
        return reports.forecast(open_facts, won, probabilities)

    def attainment(self, scope, quota):
        won = self.closed(scope, status="won")
        open_facts = self.read.open_facts_closing_within(scope)
        probabilities = self.read.win_probabilities([f.lead_id for f in open_facts if f.lead_id])
        return reports.attainment(quota, won, open_facts, probabilities)

    def account_value(self, report_filter):
        won = self.closed(report_filter, status="won")
        reports.ensure_one_currency(won, report_filter.currency)
        return reports.account_values(won)


class FromRollups:
    """The same reports from the roll-ups (rollup_reports.py), for the filters they cover."""

    def __init__(self, read_models):
        self.read = read_models
        self.rollups = read_models.rollups

    @staticmethod
    def covers(report_filter, group_by: str = "", report: str = "") -> bool:
        """Whether the roll-ups answer ``report`` (every report when none is named) for this filter and
        grouping: see plan()."""
        equal = dict(report_filter.equal)
        names = [report] if report else list(READS)
        def read(family: str, grouping: str, whole: bool) -> bool:
            grouping = group_by if grouping == ASKED else grouping
            return plan(closed_family(grouping) if family == CLOSED else family, equal, grouping, whole) is not None
        return all(read(*reads) for name in names for reads in READS[name])

    def _rows(self, family: str, report_filter, grouping: str, whole: bool = False) -> dict:
        equal = dict(report_filter.equal)
        found = plan(family, equal, grouping, whole)
        if found is None:
            raise ValueError(f"the roll-ups do not answer {family} {equal} by {grouping!r}: ask covers() first")
        if found is NOTHING_MATCHES:
            return {}
        dimension, row_grouping, required, regroup = found
        first = report_filter.start.date() if report_filter.start else None
        last = (report_filter.end.date() - timedelta(days=1)) if report_filter.end else None
        rows = self.rollups.rows(family, dimension, row_grouping, first, last)
        if not required and regroup is None:
            return rows
        fixes = ROW_DIMENSIONS[family][row_grouping]
        kept = {}
        for key, metrics in rows.items():
            values = dict(zip(fixes, key.split(GROUP_PARTS) if len(fixes) > 1 else [key], strict=True))
            if all(values[name] == value for name, value in required.items()):
                group = GROUP_PARTS.join(values[name] for name in regroup) if regroup else ""
                add_rows(kept, {field_name(group): metrics})
        return kept

    def leads(self, report_filter, grouping: str, whole: bool = False) -> dict:
        return self._rows("L", report_filter, grouping, whole)

    def facts(self, family: str, report_filter, grouping: str, whole: bool = False) -> dict:
        return self._rows(family, report_filter, grouping, whole)

    def funnel(self, report_filter):
        return rollup_reports.funnel_of(self.leads(report_filter, "", whole=True).get("", {}))

    def speed(self, report_filter, group_by: str):
        return rollup_reports.speeds(self.leads(report_filter, reports.checked_lead_grouping(group_by)), bool(group_by))

    def sla(self, report_filter, group_by: str):
        grouping = reports.checked_lead_grouping(group_by)
        return rollup_reports.sla_compliance(self.leads(report_filter, grouping), bool(group_by))

    def source_performance(self, report_filter, by_campaign: bool):
        rows = self.leads(report_filter, "campaign" if by_campaign else "source")
        rollup_reports.ensure_one_currency(rollup_reports.merged(rows), report_filter.currency)
        return rollup_reports.source_performance(rows, self.read.campaign_costs(report_filter.currency), by_campaign,
                                                 report_filter.currency)

    def rep_performance(self, report_filter):
        currency = report_filter.currency
        leads = self.leads(report_filter, "owner")
        engaged = self.facts("E", report_filter, "owner")
        closed = self.facts("C", report_filter, "owner")
        rollup_reports.ensure_one_currency(rollup_reports.merged(closed), currency)
        everything_open = reports.Filter(equal=report_filter.equal, currency=currency)
        open_rows = self.facts("O", everything_open, "owner")
        rollup_reports.ensure_one_currency(rollup_reports.merged(open_rows), currency)
        activity_rows = self._rows("A", reports.Filter(report_filter.start, report_filter.end), "by")
        people = rollup_reports.people(leads, engaged, closed, open_rows, currency)
        activities = {rep: int(m["n"]) for rep, m in activity_rows.items()
                      if rep and m.get("n", 0) > 0 and (rep in people or not report_filter.equal)}
        return rollup_reports.rep_performance(leads, activities, engaged, closed, open_rows, currency)

    def win_rate(self, report_filter, group_by: str):
        rows = self.facts(closed_family(group_by), report_filter, group_by)
        rollup_reports.ensure_one_currency(rollup_reports.merged(rows), report_filter.currency)
        return rollup_reports.win_rates(rows, bool(group_by), report_filter.currency)

    def sales_cycle(self, report_filter, group_by: str):
        rows = self.facts(closed_family(group_by), report_filter, group_by)
        whole = rows.get("", {}) if not group_by else self.facts("C", report_filter, "", whole=True).get("", {})
        total, listed = rollup_reports.sales_cycles(rows, bool(group_by), report_filter.currency)
        return total, listed, rollup_reports.stage_times(whole, report_filter.currency)

    def loss_reasons(self, report_filter):
        return rollup_reports.loss_reasons(self.facts("C", report_filter, "", whole=True).get("", {}),
                                           report_filter.currency)

    def pipeline_summary(self, report_filter):
        whole = self.facts("E", report_filter, "", whole=True).get("", {})
        rollup_reports.ensure_one_currency(whole, report_filter.currency)
        return rollup_reports.stage_summary(whole, report_filter.currency)

    def forecast(self, report_filter):
        open_whole = self.facts("O", report_filter, "", whole=True).get("", {})
        closed_whole = self.facts("C", report_filter, "", whole=True).get("", {})
        reports.refuse_several_currencies(
            currencies_with_amounts(open_whole) + currencies_with_amounts(closed_whole, "wa"), report_filter.currency)
        return rollup_reports.forecast(open_whole, closed_whole, report_filter.currency)

    def attainment(self, scope, quota):
        return rollup_reports.attainment(quota, self.facts("C", scope, "", whole=True).get("", {}),
                                         self.facts("O", scope, "", whole=True).get("", {}), scope.currency)

    def account_value(self, report_filter):
        closed_whole = self.facts("C", report_filter, "").get("", {})
        reports.refuse_several_currencies(currencies_with_amounts(closed_whole, "wa"), report_filter.currency)
        return rollup_reports.account_values(self.facts("W", report_filter, "account"), report_filter.currency)


# ---- which roll-ups answer a question ------------------------------------------------------------------

ASKED = "*"  # the grouping the report was asked for
CLOSED = "closed"  # closed deals: by account name in their own family (K), otherwise C
# What each report reads: (family, grouping, whether it needs the metrics only the whole keeps).
READS = {
    "funnel": [("L", "", True)], "speed": [("L", ASKED, False)], "sla": [("L", ASKED, False)],
    "source_performance": [("L", "source", False)],
    "rep_performance": [("L", "owner", False), ("E", "owner", False), ("C", "owner", False), ("O", "owner", False)],
    "win_rate": [(CLOSED, ASKED, False)], "sales_cycle": [(CLOSED, ASKED, False), ("C", "", True)],
    "loss_reasons": [("C", "", True)], "pipeline_summary": [("E", "", True)],
    "forecast": [("O", "", True), ("C", "", True)], "attainment": [("C", "", True), ("O", "", True)],
    "account_value": [("W", "account", False), ("C", "", False)]}
FILTERS_OF = {"L": LEAD_FILTER_FIELDS, "C": FACT_FILTER_FIELDS, "E": FACT_FILTER_FIELDS, "O": FACT_FILTER_FIELDS,
              "W": FACT_FILTER_FIELDS, "K": FACT_FILTER_FIELDS, "A": {}}
GROUPINGS_KEPT = {"L": {"", *ROW_DIMENSIONS["L"]}, "C": {"", *ROW_DIMENSIONS["C"]}, "E": {"", "owner"},
                  "O": {"", "owner"}, "W": {"account"}, "K": {"account"}, "A": {"by"}}


def closed_family(grouping: str) -> str:
    return "K" if grouping == "account" else "C"


def grouping_of(arguments: tuple) -> str:
    """The grouping among a report's arguments: the first, when it is one (speed, sla, win rate...)."""
    return arguments[0] if arguments and isinstance(arguments[0], str) else ""


NOTHING_MATCHES = "no rows"  # plan()'s answer to a filter on a field the family's records do not have


def plan(family: str, equal: dict, grouping: str, whole: bool):
    """How the roll-ups answer ``equal`` filters by ``grouping``, or None when they do not:
    (document dimension, row grouping, {filter: value} a row's group must have, the filters naming the
    asked group — None to keep the row groups as they are); NOTHING_MATCHES when a filter names a
    field these records do not have (no record matches it, so the answer is no rows).

    Documents are kept per single filter (and for a rep within a team). More filters read the
    documents of one of them and keep the rows, in a grouping whose group values fix the others, that
    match: a manager's "webinar leads of my team" reads team documents and their source rows. A report
    that needs the metrics only the whole keeps (``whole``: the funnel's stage reach, loss reasons,
    stage times) reads rows of a grouping that keeps them too: leads by source, medium and campaign;
    deals keep them in the whole only."""
    if grouping and grouping not in GROUPINGS_KEPT[family]:
        return None
    if any(name not in FILTERS_OF[family] for name in equal):
        return NOTHING_MATCHES
    options = []
    if "owner_id" in equal and "team" in equal:
        options.append(((OWNER_AND_TEAM, owner_and_team(equal["owner_id"], equal["team"])), {"owner_id", "team"}))
    # A rep's or a team's documents first: they hold the fewest rows.
    by_narrowness = sorted(equal.items(), key=lambda item: (item[0] not in ("owner_id", "team"), item[0]))
    options += [((name, value), {name}) for name, value in by_narrowness] or [(("", ""), set())]
    for dimension, fixed in options:
        rest = {name: value for name, value in equal.items() if name not in fixed}
        if not rest:
            return dimension, grouping, {}, None
    for dimension, fixed in options:
        rest = {name: value for name, value in equal.items() if name not in fixed}
        for row_grouping, fixes in ROW_DIMENSIONS[family].items():
            if whole and row_grouping not in WHOLE_IN_GROUPINGS.get(family, ()):
                continue
            asked = ROW_DIMENSIONS[family].get(grouping, ()) if grouping else ()
            if set(rest) <= set(fixes) and (not grouping or (asked and set(asked) <= set(fixes))):
                return dimension, row_grouping, rest, asked
    return None


# ---- verify -------------------------------------------------------------------------------------------

SECONDS_RESOLUTION = 0.01  # speed-to-lead and response histograms: within 1 %
EXACT = 1e-9  # everything else is exact; day durations are computed alike, to the last bit or nearly
VERIFIED = ([("funnel", (), EXACT)]
            + [(report, (grouping,), SECONDS_RESOLUTION if report == "speed" else EXACT)
               for report in ("speed", "sla") for grouping in ("", "owner", "team", "source")]
            + [("source_performance", (False,), EXACT), ("source_performance", (True,), EXACT),
               ("rep_performance", (), SECONDS_RESOLUTION)]
            + [(report, (grouping,), EXACT) for report in ("win_rate", "sales_cycle")
               for grouping in sorted(ROLLED_FACT_GROUPS)]
            + [("loss_reasons", (), EXACT), ("pipeline_summary", (), EXACT), ("forecast", (), EXACT),
               ("account_value", (), EXACT)])


def _answer(source, report: str, report_filter, arguments: tuple):
    """The report, or the refusal both ways must give alike (amounts in several currencies)."""
    try:
        return getattr(source, report)(report_filter, *arguments)
    except FailedPrecondition as refused:
        return ("refused", str(refused))


def verify(read_models, report_filter) -> tuple[int, list[tuple[str, str]]]:
    """(reports compared, [(report, difference)]) for one filter: those the roll-ups answer."""
    from_records, from_rollups = FromRecords(read_models), FromRollups(read_models)
    found, compared = [], 0
    for report, arguments, relative in VERIFIED:
        if not FromRollups.covers(report_filter, grouping_of(arguments), report):
            continue
        compared += 1
        name = f"{report}{arguments!r}"
        found += [(name, difference) for difference in differences(
            "", _answer(from_records, report, report_filter, arguments),
            _answer(from_rollups, report, report_filter, arguments), relative)]
    return compared, found


def differences(path: str, from_records, from_rollups, relative: float = 1e-9) -> list[str]:
    """Where two answers differ: counts and money exactly, durations within ``relative`` (the
    seconds-resolution histograms are within 1 %, asked for with relative=0.01)."""
    if is_dataclass(from_records) and is_dataclass(from_rollups):
        found = []
        for field in fields(from_records):
            found += differences(f"{path}.{field.name}", getattr(from_records, field.name),
                                 getattr(from_rollups, field.name), relative)
        return found
    if isinstance(from_records, (list, tuple)) and isinstance(from_rollups, (list, tuple)):
        if len(from_records) != len(from_rollups):
            return [f"{path}: {len(from_records)} rows from the records, {len(from_rollups)} from the roll-ups"]
        found = []
        for index, (a, b) in enumerate(zip(from_records, from_rollups, strict=True)):
            found += differences(f"{path}[{index}]", a, b, relative)
        return found
    if isinstance(from_records, float) or isinstance(from_rollups, float):
        a, b = float(from_records), float(from_rollups)
        if abs(a - b) > relative * max(abs(a), abs(b)) + 1e-12:
            return [f"{path}: {a!r} from the records, {b!r} from the roll-ups"]
        return []
    if isinstance(from_records, Decimal) or isinstance(from_rollups, Decimal):
        if Decimal(from_records) != Decimal(from_rollups):
            return [f"{path}: {from_records} from the records, {from_rollups} from the roll-ups"]
        return []
    if from_records != from_rollups:
        return [f"{path}: {from_records!r} from the records, {from_rollups!r} from the roll-ups"]
    return []
