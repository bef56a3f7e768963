"""Reconciliation: the Maven sales history imported through the opportunity service with the files' own
counts (rows per stage, won value, accounts, the product spelling quirk, importing again changing
nothing), then every number reporting gives equals the same number computed here, independently,
straight from the CSV files with the csv module (stage counts, win rates overall and per agent, manager
and office, engage -> close days of won deals, won value per product and per account). One import of the
history serves both: it is the slowest thing the integration tests do."""
import csv
import statistics
from collections import Counter, defaultdict
from datetime import date
from decimal import Decimal

import pytest
from leadflow.opportunity.v1 import opportunity_pb2, opportunity_pb2_grpc
from leadflow.reporting.v1 import reporting_pb2, reporting_pb2_grpc

from services.cli.history import history_requests
from services.opportunity.models import OpportunityDocument
from services.opportunity.service import OpportunityService
from services.reporting.models import OpportunityFactDocument
from services.reporting.service import ReportingService
from tests.integration.conftest import start_isolated
from tests.support import wait_until

# The data set's one product-name quirk, as its PROFILE.md documents it.
PRODUCT_SPELLINGS = {"GTXPro": "GTX Pro"}


def user_id(name: str) -> str:
    return ".".join(name.lower().split())


def read_csv(path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


class Independent:
    """The numbers, computed from the files alone."""

    def __init__(self, folder):
        self.rows = read_csv(folder / "sales_pipeline.csv")
        teams = {t["sales_agent"]: t for t in read_csv(folder / "sales_teams.csv")}
        self.closed = [r for r in self.rows if r["deal_stage"] in ("Won", "Lost")]
        self.won = [r for r in self.closed if r["deal_stage"] == "Won"]
        for row in self.rows:
            row["manager"] = user_id(teams[row["sales_agent"]]["manager"])
            row["office"] = teams[row["sales_agent"]]["regional_office"]
            row["product"] = PRODUCT_SPELLINGS.get(row["product"], row["product"])

    def win_rates(self, key) -> dict:
        won, closed = Counter(), Counter()
        for row in self.closed:
            closed[key(row)] += 1
            won[key(row)] += row["deal_stage"] == "Won"
        return {k: (closed[k], won[k], won[k] / closed[k]) for k in closed}

    def won_value(self, key) -> dict:
        totals = defaultdict(Decimal)
        for row in self.won:
            totals[key(row)] += Decimal(row["close_value"])
        return dict(totals)

    def won_days(self) -> list:
        return [(date.fromisoformat(r["close_date"]) - date.fromisoformat(r["engage_date"])).days for r in self.won]


def as_table(rows) -> dict:
    return {r.key: (r.closed, r.won, r.win_rate) for r in rows}


@pytest.mark.timeout(400)
def test_reports_on_the_maven_history_equal_an_independent_computation(run_service, infra, tokens, shared_data):
    folder = shared_data / "maven-crm-sales-opportunities"
    truth = Independent(folder)
    reporting_service = start_isolated(run_service, infra, ReportingService)
    opportunity_service = start_isolated(run_service, infra, OpportunityService)
    admin = opportunity_service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["admin"])
    header = opportunity_pb2.OpportunityImportHeader(currency="USD", external_id_prefix="maven:", stage_map={
        "Prospecting": "qualification", "Engaging": "discovery"})
    imported = admin.ImportOpportunities(history_requests(header, {
        "opportunities": folder / "sales_pipeline.csv", "accounts": folder / "accounts.csv",
        "sales_teams": folder / "sales_teams.csv", "products": folder / "products.csv"}))

    # The import, against the files' own counts.
    stages = Counter(r["deal_stage"] for r in truth.rows)
    by_stage = {"closed_won": stages["Won"], "closed_lost": stages["Lost"], "discovery": stages["Engaging"],
                "qualification": stages["Prospecting"]}
    assert (imported.rows, imported.imported, imported.rejected) == (len(truth.rows), len(truth.rows), 0)
    assert dict(imported.by_stage) == by_stage
    assert {s: OpportunityDocument.objects(stage_id=s).count() for s in by_stage} == by_stage
    assert sum(Decimal(o.amount) for o in OpportunityDocument.objects(status="won").only("amount")) == \
        sum(Decimal(r["close_value"]) for r in truth.won)
    assert imported.accounts_created == len({r["account"] for r in truth.rows if r["account"]})
    gtxpro = sum(1 for r in read_csv(folder / "sales_pipeline.csv") if r["product"] == "GTXPro")
    assert f"product 'GTXPro' read as the listed 'GTX Pro' ({gtxpro:,} rows)" in imported.notes
    assert OpportunityDocument.objects(product="GTXPro").count() == 0
    assert set(OpportunityDocument.objects.distinct("office")) == {"Central", "East", "West"}

    # Reporting learns the history from the events alone.
    # Polled once a second: on the embedded store a count reads the whole collection, and polling it
    # back to back would take the store from the projection it waits for.
    assert wait_until(lambda: OpportunityFactDocument.objects.count() == len(truth.rows), timeout=300, interval=1.0)
    reports = reporting_service.grpc(reporting_pb2_grpc.ReportingServiceStub, tokens["admin"])

    def win_rate(group_by=reporting_pb2.GROUP_BY_UNSPECIFIED, **filters):
        return reports.GetWinRate(reporting_pb2.GetWinRateRequest(
            filter=reporting_pb2.ReportFilter(**filters), group_by=group_by))

    # Stage counts. A batch's records are marked for the roll-ups just after they are written, so the
    # last batch's deals may reach the roll-ups a moment after the records are all there.
    def stage_counts(summary) -> dict:
        return {s.stage_id: s.opportunities for s in summary.stages}

    def summary_once_complete():
        summary = reports.GetPipelineSummary(reporting_pb2.GetPipelineSummaryRequest())
        return summary if stage_counts(summary) == by_stage else None

    summary = wait_until(summary_once_complete, timeout=30, interval=0.5)
    assert summary is not None, stage_counts(reports.GetPipelineSummary(reporting_pb2.GetPipelineSummaryRequest()))
    assert summary.opportunities == len(truth.rows)

    # Win rate overall and per agent, manager and office.
    overall = win_rate().total
    assert (overall.closed, overall.won, overall.lost) == (len(truth.closed), len(truth.won),
                                                           len(truth.closed) - len(truth.won))
    assert overall.win_rate == pytest.approx(len(truth.won) / len(truth.closed), abs=1e-12)
    assert Decimal(overall.won_value) == sum(Decimal(r["close_value"]) for r in truth.won)
    for group_by, key in ((reporting_pb2.GROUP_BY_OWNER, lambda r: user_id(r["sales_agent"])),
                          (reporting_pb2.GROUP_BY_MANAGER, lambda r: r["manager"]),
                          (reporting_pb2.GROUP_BY_OFFICE, lambda r: r["office"])):
        got = as_table(win_rate(group_by).rows)
        expected = truth.win_rates(key)
        assert got.keys() == expected.keys()
        for k, (closed, won, rate) in expected.items():
            assert got[k][:2] == (closed, won) and got[k][2] == pytest.approx(rate, abs=1e-12), k

    # Engage -> close days of won deals: mean and median.
    cycle = reports.GetSalesCycle(reporting_pb2.GetSalesCycleRequest()).total
    days = truth.won_days()
    assert cycle.won == len(days)
    assert cycle.won_mean_days == pytest.approx(statistics.fmean(days), abs=1e-9)
    assert cycle.won_median_days == statistics.median(days)

    # Won value per product and per account.
    by_product = {r.key: Decimal(r.won_value) for r in win_rate(reporting_pb2.GROUP_BY_PRODUCT).rows}
    assert by_product == truth.won_value(lambda r: r["product"])
    accounts = reports.GetAccountValue(reporting_pb2.GetAccountValueRequest(page={"page_size": 500}))
    assert {a.account_name: Decimal(a.won_value) for a in accounts.accounts} == \
        truth.won_value(lambda r: r["account"])
    assert {a.account_name: a.won_deals for a in accounts.accounts} == Counter(r["account"] for r in truth.won)
    assert Decimal(accounts.total_won_value) == sum(Decimal(r["close_value"]) for r in truth.won)

    # A period: deals closed in the second half of 2017 only.
    second_half = [r for r in truth.closed if r["close_date"] >= "2017-07-01"]
    late = win_rate(period_start="2017-07-01", period_end="2017-12-31").total
    assert (late.closed, late.won) == (len(second_half), sum(r["deal_stage"] == "Won" for r in second_half))

    # The same files again change nothing.
    again = admin.ImportOpportunities(history_requests(header, {"opportunities": folder / "sales_pipeline.csv"}))
    assert (again.imported, again.unchanged) == (0, len(truth.rows))
