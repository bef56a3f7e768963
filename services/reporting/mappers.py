"""Reporting: report results -> protos."""
from google.protobuf import struct_pb2
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
