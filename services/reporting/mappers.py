"""Reporting: report results -> protos, and any report -> CSV."""
import csv
import io
from dataclasses import dataclass

from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict
from leadflow.reporting.v1 import reporting_pb2

from services.common.mappers import to_timestamp
from services.reporting.reports import text

GROUP_BY_FROM_PROTO = {
    reporting_pb2.GROUP_BY_UNSPECIFIED: "", reporting_pb2.GROUP_BY_OWNER: "owner",
    reporting_pb2.GROUP_BY_MANAGER: "manager", reporting_pb2.GROUP_BY_TEAM: "team",
    reporting_pb2.GROUP_BY_OFFICE: "office", reporting_pb2.GROUP_BY_PRODUCT: "product",
    reporting_pb2.GROUP_BY_SOURCE: "source", reporting_pb2.GROUP_BY_ACCOUNT: "account",
    reporting_pb2.GROUP_BY_PIPELINE: "pipeline"}
FILTER_FIELDS = ("period_start", "period_end", "pipeline_id", "team", "owner_id", "source", "manager_id", "office",
                 "product", "currency", "medium", "campaign")


def filter_values(message) -> dict:
    return {name: getattr(message, name) for name in FILTER_FIELDS}


def win_rate_to_proto(row) -> reporting_pb2.WinRateRow:
    return reporting_pb2.WinRateRow(key=row.key, closed=row.closed, won=row.won, lost=row.lost,
                                    win_rate=row.win_rate, won_value=text(row.won_value))


def cycle_to_proto(row) -> reporting_pb2.SalesCycleRow:
    return reporting_pb2.SalesCycleRow(key=row.key, won=row.won, won_mean_days=row.won_mean_days,
                                       won_median_days=row.won_median_days, lost=row.lost,
                                       lost_mean_days=row.lost_mean_days, lost_median_days=row.lost_median_days)


def account_value_to_proto(row) -> reporting_pb2.AccountValueRow:
    return reporting_pb2.AccountValueRow(
        account_id=row.account_id, account_name=row.account_name, won_deals=row.won_deals,
        won_value=text(row.won_value), repeat_deals=row.repeat_deals, first_won_at=to_timestamp(row.first_won_at),
        last_won_at=to_timestamp(row.last_won_at), acquisition_source=row.acquisition_source)


def timeline_entry_to_proto(logged: dict, summary: str) -> reporting_pb2.TimelineEntry:
    details = struct_pb2.Struct()
    details.update({k: v for k, v in logged["payload"].items()
                    if k not in ("event_id", "event_type", "occurred_at", "schema_version", "trace_id")})
    return reporting_pb2.TimelineEntry(occurred_at=to_timestamp(logged["occurred_at"]),
                                       event_type=logged["event_type"], service=logged["source_service"],
                                       summary=summary, details=details, event_id=logged["_id"])


def rebuild_job_to_proto(job) -> reporting_pb2.RebuildJob:
    return reporting_pb2.RebuildJob(job_id=job.id, status=job.status, total=job.total, processed=job.processed,
                                    created_at=to_timestamp(job.created_at), finished_at=to_timestamp(job.finished_at))


def _durations(measured: tuple) -> reporting_pb2.Durations:
    leads, p50, p90, p99 = measured
    return reporting_pb2.Durations(leads=leads, p50_seconds=p50, p90_seconds=p90, p99_seconds=p99)


def speed_to_proto(row) -> reporting_pb2.SpeedRow:
    return reporting_pb2.SpeedRow(key=row.key, leads=row.leads, to_assignment=_durations(row.to_assignment),
                                  to_contact=_durations(row.to_contact))


def sla_to_proto(row) -> reporting_pb2.SlaRow:
    return reporting_pb2.SlaRow(key=row.key, tasks=row.tasks, met=row.met, warned=row.warned, breached=row.breached,
                                escalated=row.escalated, open=row.open, met_share=row.met_share,
                                breached_share=row.breached_share)


def source_to_proto(row) -> reporting_pb2.SourceRow:
    return reporting_pb2.SourceRow(
        source=row.source, medium=row.medium, campaign=row.campaign, leads=row.leads, mqls=row.mqls,
        mql_rate=row.mqls / row.leads if row.leads else 0.0, opportunities=row.opportunities,
        opportunity_rate=row.opportunities / row.leads if row.leads else 0.0, won=row.won,
        won_value=text(row.won_value), win_rate=row.won / row.closed if row.closed else 0.0,
        cost=text(row.cost) if row.cost is not None else "",
        cost_per_won=text(row.cost_per_won) if row.cost_per_won is not None else "")


def rep_to_proto(row) -> reporting_pb2.RepRow:
    return reporting_pb2.RepRow(
        rep_id=row.rep_id, team=row.team, leads=row.leads, median_response_seconds=row.median_response_seconds,
        activities=row.activities, opportunities=row.opportunities, won=row.won, won_value=text(row.won_value),
        win_rate=row.won / row.closed if row.closed else 0.0, open_pipeline=text(row.open_pipeline))


def quota_to_proto(quota) -> reporting_pb2.Quota:
    return reporting_pb2.Quota(owner_id=quota.owner_id, team=quota.team, period_start=quota.period_start,
                               period_end=quota.period_end, amount=text(quota.amount), currency=quota.currency)


def attainment_to_proto(row) -> reporting_pb2.QuotaAttainment:
    return reporting_pb2.QuotaAttainment(quota=quota_to_proto(row.quota), won_value=text(row.won_value),
                                         attainment=row.attainment, weighted_pipeline=text(row.weighted_pipeline),
                                         projected_attainment=row.projected)


@dataclass(frozen=True)
class Export:
    name: str  # file name without .csv
    method: str  # the report's RPC
    request_cls: type
    rows: str  # the response's repeated field
    total: str = ""  # the response's total row field, if any
    paged: bool = False


EXPORTS = {
    reporting_pb2.REPORT_KIND_FUNNEL: Export("funnel", "GetFunnel", reporting_pb2.GetFunnelRequest, "steps"),
    reporting_pb2.REPORT_KIND_WIN_RATE: Export("win_rate", "GetWinRate", reporting_pb2.GetWinRateRequest, "rows",
                                               "total"),
    reporting_pb2.REPORT_KIND_SALES_CYCLE: Export("sales_cycle", "GetSalesCycle", reporting_pb2.GetSalesCycleRequest,
                                                  "rows", "total"),
    reporting_pb2.REPORT_KIND_LOSS_REASONS: Export("loss_reasons", "GetLossReasons",
                                                   reporting_pb2.GetLossReasonsRequest, "reasons"),
    reporting_pb2.REPORT_KIND_ACCOUNT_VALUE: Export("account_value", "GetAccountValue",
                                                    reporting_pb2.GetAccountValueRequest, "accounts", paged=True),
    reporting_pb2.REPORT_KIND_FORECAST: Export("forecast", "GetForecast", reporting_pb2.GetForecastRequest,
                                               "categories"),
    reporting_pb2.REPORT_KIND_PIPELINE_SUMMARY: Export("pipeline_summary", "GetPipelineSummary",
                                                       reporting_pb2.GetPipelineSummaryRequest, "stages"),
    reporting_pb2.REPORT_KIND_SPEED_TO_LEAD: Export("speed_to_lead", "GetSpeedToLead",
                                                    reporting_pb2.GetSpeedToLeadRequest, "rows", "total"),
    reporting_pb2.REPORT_KIND_SLA_COMPLIANCE: Export("sla_compliance", "GetSlaCompliance",
                                                     reporting_pb2.GetSlaComplianceRequest, "rows", "total"),
    reporting_pb2.REPORT_KIND_SOURCE_PERFORMANCE: Export("source_performance", "GetSourcePerformance",
                                                         reporting_pb2.GetSourcePerformanceRequest, "rows"),
    reporting_pb2.REPORT_KIND_REP_PERFORMANCE: Export("rep_performance", "GetRepPerformance",
                                                      reporting_pb2.GetRepPerformanceRequest, "reps"),
    reporting_pb2.REPORT_KIND_QUOTA_ATTAINMENT: Export("quota_attainment", "GetQuotaAttainment",
                                                       reporting_pb2.GetQuotaAttainmentRequest, "quotas"),
}


def _flat(message, prefix: str = "") -> dict:
    """A row as columns in the contract's field order: nested messages become
    "to_assignment.p50_seconds" and the like."""
    values = MessageToDict(message, always_print_fields_with_no_presence=True, preserving_proto_field_name=True)
    flat = {}
    for field in message.DESCRIPTOR.fields:
        if field.message_type is not None and not field.is_repeated and field.message_type.name not in (
                "Timestamp", "Struct"):
            flat.update(_flat(getattr(message, field.name), f"{prefix}{field.name}."))
        else:
            flat[f"{prefix}{field.name}"] = values.get(field.name, "")  # an unset time is an empty cell
    return flat


def report_csv(export: Export, responses: list) -> bytes:
    """The report's rows (after its total, labelled "(all)") as UTF-8 CSV with a header row."""
    rows = []
    if export.total:
        total = _flat(getattr(responses[0], export.total))
        if "key" in total:
            total["key"] = "(all)"
        rows.append(total)
    rows += [_flat(row) for response in responses for row in getattr(response, export.rows)]
    if not rows:  # still a header, from an empty row of the report's kind
        rows_field = getattr(type(responses[0])(), export.rows)
        columns = list(_flat(rows_field.add()))
    else:
        columns = list(dict.fromkeys(column for row in rows for column in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")
