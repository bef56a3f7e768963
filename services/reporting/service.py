"""Reporting service: every event kept and projected, answering the manager's questions; and the event
stream (leadflow.events.v1) that hands the same events to other systems."""
import threading
import time
from datetime import timedelta

import eventlet
from grpc import StatusCode
from leadflow.events.v1 import events_pb2, events_pb2_grpc
from leadflow.reporting.v1 import reporting_pb2, reporting_pb2_grpc
from nameko import config
from nameko_grpc.errors import GrpcError

from services.common.auth import Role, can_see_lead
from services.common.events import utcnow
from services.common import metrics
from services.common.errors import FieldViolation, InvalidArgument, NotFound, PermissionDenied, ResourceExhausted
from services.common.mappers import next_page_token, page_window
from services.common.messaging import event_handler
from services.common.rpc import LeadflowGrpc, ServerStopping
from services.common.service_base import LeadflowService
from services.common.timers import configured_timer
from services.reporting import answers, domain, mappers, reports, stream, stream_mappers, webhooks
from services.reporting.dependencies import ReportingStore
from services.reporting.stream_store import doorbell

reporting_rpc = LeadflowGrpc.implementing(reporting_pb2_grpc.ReportingServiceStub)
events_rpc = LeadflowGrpc.implementing(events_pb2_grpc.EventStreamServiceStub)
EVERYONE = {Role.ADMIN, Role.MANAGER, Role.REP, Role.INTEGRATION}
INTEGRATORS = {Role.ADMIN, Role.INTEGRATION}
TICK_BUDGET_SECONDS = 3.0
_gauges_refreshed_at = float("-inf")  # per process: the gauges are this process's view
_STAGE_TO_PROTO = {stage: getattr(reporting_pb2, f"FUNNEL_STAGE_{stage.name}") for stage in domain.Stage}
_open_streams = [0]  # per process: each open stream holds one of its workers


def _take_stream_slot():
    """Count an event stream in, refusing one over EVENT_STREAM_MAX_SUBSCRIBERS; returns its release."""
    limit = int(config.get("EVENT_STREAM_MAX_SUBSCRIBERS", 10))
    if _open_streams[0] >= limit:
        raise ResourceExhausted(f"this replica holds {limit} event streams already (EVENT_STREAM_MAX_SUBSCRIBERS); "
                                f"retry later or on another replica")
    _open_streams[0] += 1
    metrics.EVENT_STREAM_SUBSCRIBERS.set(_open_streams[0])
    released = []

    def release():
        if not released:
            released.append(True)
            _open_streams[0] -= 1
            metrics.EVENT_STREAM_SUBSCRIBERS.set(_open_streams[0])
    return release


def _projecting(source_service: str, event_type: str):
    """Keep the events in the log and project them (the lead's progress, the opportunity's snapshot...),
    a batch at a time (services.common.messaging.BatchEventHandler), in the background: reports may
    trail a burst of leads by a little, reps must not wait for them."""
    @event_handler(source_service, event_type, background=True)
    def handle(self, events):
        self.read_models.record(events, source_service)
    return handle


class ReportingService(LeadflowService):
    name = "reporting"
    read_models = ReportingStore()
    stopping = ServerStopping()

    handle_lead_captured = _projecting("capture", "lead_captured")
    handle_lead_merged = _projecting("capture", "lead_merged")
    handle_lead_unmerged = _projecting("capture", "lead_unmerged")
    handle_lead_activity_recorded = _projecting("capture", "lead_activity_recorded")
    handle_lead_scored = _projecting("scoring", "lead_scored")
    handle_lead_qualified = _projecting("scoring", "lead_qualified")
    handle_lead_disqualified = _projecting("scoring", "lead_disqualified")
    handle_lead_assigned = _projecting("routing", "lead_assigned")
    handle_lead_contacted = _projecting("opportunity", "lead_contacted")
    handle_lead_converted = _projecting("opportunity", "lead_converted")
    handle_activity_logged = _projecting("opportunity", "activity_logged")
    handle_lead_sales_qualified = _projecting("opportunity", "lead_sales_qualified")
    handle_lead_sales_disqualified = _projecting("opportunity", "lead_sales_disqualified")
    handle_lead_recycled = _projecting("opportunity", "lead_recycled")
    handle_opportunity_stage_changed = _projecting("opportunity", "opportunity_stage_changed")
    handle_opportunity_won = _projecting("opportunity", "opportunity_won")
    handle_opportunity_lost = _projecting("opportunity", "opportunity_lost")
    handle_opportunity_updated = _projecting("opportunity", "opportunity_updated")
    handle_opportunity_imported = _projecting("opportunity", "opportunity_imported")
    handle_task_created = _projecting("routing", "task_created")
    handle_lead_reassigned = _projecting("routing", "lead_reassigned")
    handle_sla_warning = _projecting("routing", "sla_warning")
    handle_sla_breached = _projecting("routing", "sla_breached")
    handle_task_completed = _projecting("routing", "task_completed")

    handle_scoring_config_changed = _projecting("scoring", "config_changed")
    handle_routing_config_changed = _projecting("routing", "config_changed")
    handle_opportunity_config_changed = _projecting("opportunity", "config_changed")

    def answer(self, report: str, report_filter, *arguments):
        """``report`` (a method of answers.FromRollups and FromRecords; a grouping, when it takes one,
        comes first among ``arguments``) from the roll-ups when they cover the question, caught up
        first with every record marked before it was asked; from the records when they do not cover
        it, or when that backlog is more than the catch-up could apply in its time (a burst the timer's
        applier has not reached yet)."""
        rolled = self.read_models.rollups
        source = answers.FromRecords(self.read_models)
        if answers.FromRollups.covers(report_filter, answers.grouping_of(arguments), report) and rolled.ready():
            asked_at = utcnow()
            rolled.catch_up(answers.CATCH_UP_SECONDS)
            if not rolled.marked_before(asked_at):
                source = answers.FromRollups(self.read_models)
        return getattr(source, report)(report_filter, *arguments)

    @reporting_rpc(roles=EVERYONE)
    def GetFunnel(self, request, context):
        values = mappers.filter_values(request.filter)
        values["source"] = values["source"] or request.source
        report_filter = reports.checked_filter(values, self.caller)
        steps, reach = self.answer("funnel", report_filter)
        return reporting_pb2.GetFunnelResponse(
            steps=[reporting_pb2.FunnelStep(stage=_STAGE_TO_PROTO[s.stage], leads=s.leads,
                                            conversion_from_previous=s.conversion_from_previous, dropped=s.dropped)
                   for s in steps],
            opportunity_stages=[reporting_pb2.OpportunityStageStep(pipeline_id=pipeline, stage_id=stage,
                                                                   opportunities=n, conversion_from_previous=rate)
                                for pipeline, stage, n, rate in reach])

    @reporting_rpc(roles=EVERYONE)
    def GetSpeedToLead(self, request, context):
        report_filter, group_by = self._filter(request.filter), mappers.GROUP_BY_FROM_PROTO.get(request.group_by, "")
        total, rows = self.answer("speed", report_filter, group_by)
        return reporting_pb2.GetSpeedToLeadResponse(total=mappers.speed_to_proto(total),
                                                    rows=[mappers.speed_to_proto(r) for r in rows])

    @reporting_rpc(roles=EVERYONE)
    def GetSlaCompliance(self, request, context):
        report_filter, group_by = self._filter(request.filter), mappers.GROUP_BY_FROM_PROTO.get(request.group_by, "")
        total, rows = self.answer("sla", report_filter, group_by)
        return reporting_pb2.GetSlaComplianceResponse(total=mappers.sla_to_proto(total),
                                                      rows=[mappers.sla_to_proto(r) for r in rows])

    @reporting_rpc(roles=EVERYONE)
    def GetSourcePerformance(self, request, context):
        report_filter = self._filter(request.filter)
        rows = self.answer("source_performance", report_filter, request.by_campaign)
        return reporting_pb2.GetSourcePerformanceResponse(rows=[mappers.source_to_proto(r) for r in rows])

    @reporting_rpc(roles={Role.ADMIN, Role.MANAGER})
    def PutCampaignCost(self, request, context):
        source, campaign, amount, currency = reports.checked_cost(request.source, request.campaign, request.amount,
                                                                  request.currency)
        self.read_models.put_campaign_cost(source, campaign, amount, currency, self.caller.id)
        return reporting_pb2.PutCampaignCostResponse(source=source, campaign=campaign, amount=reports.text(amount),
                                                     currency=currency)

    @reporting_rpc(roles=EVERYONE)
    def GetRepPerformance(self, request, context):
        report_filter = self._filter(request.filter)
        rows = self.answer("rep_performance", report_filter)
        return reporting_pb2.GetRepPerformanceResponse(reps=[mappers.rep_to_proto(r) for r in rows])

    # ---- quotas and exports ---------------------------------------------------------------------------

    @reporting_rpc(roles={Role.ADMIN, Role.MANAGER})
    def PutQuota(self, request, context):
        given = request.quota
        quota = reports.checked_quota(given.owner_id, given.team, given.period_start, given.period_end, given.amount,
                                      given.currency, self.caller)
        self.read_models.put_quota(quota, self.caller.id)
        return reporting_pb2.PutQuotaResponse(quota=mappers.quota_to_proto(quota))

    @reporting_rpc(roles=EVERYONE)
    def GetQuotaAttainment(self, request, context):
        report_filter = self._filter(request.filter)
        rows = []
        for quota in self.read_models.quotas(report_filter):
            values = {"period_start": quota.period_start, "period_end": quota.period_end, "currency": quota.currency,
                      **({"owner_id": quota.owner_id} if quota.owner_id else {"team": quota.team})}
            if quota.owner_id and quota.team:
                values["team"] = quota.team
            scope = reports.checked_filter(values, self.caller)
            rows.append(self.answer("attainment", scope, quota))
        return reporting_pb2.GetQuotaAttainmentResponse(quotas=[mappers.attainment_to_proto(r) for r in rows])

    @reporting_rpc(roles=EVERYONE)
    def ExportReport(self, request, context):
        export = mappers.EXPORTS.get(request.report)
        if export is None:
            raise InvalidArgument([FieldViolation("report", "names the report to export")])
        make_request = export.request_cls
        fields = {"filter": request.filter}
        if "group_by" in make_request.DESCRIPTOR.fields_by_name:
            fields["group_by"] = request.group_by
        if "by_campaign" in make_request.DESCRIPTOR.fields_by_name:
            fields["by_campaign"] = request.by_campaign
        run = getattr(self, export.method)
        if export.paged:
            responses, token = [], ""
            while True:
                response = run(make_request(**fields, page={"page_size": 500, "page_token": token}), context)
                responses.append(response)
                token = response.page.next_page_token
                if not token:
                    break
        else:
            responses = [run(make_request(**fields), context)]
        return reporting_pb2.ExportReportResponse(csv=mappers.report_csv(export, responses),
                                                  filename=f"{export.name}.csv")

    # ---- the lead 360 timeline and rebuilds ------------------------------------------------------------

    @reporting_rpc(roles=EVERYONE)
    def GetLeadTimeline(self, request, context):
        progress = self.read_models.lead_progress(request.lead_id)
        if progress is None:
            raise NotFound("lead", request.lead_id)
        if not can_see_lead(self.caller, progress.get("rep_id") or "", progress.get("team") or ""):
            raise PermissionDenied("this lead is not yours or your team's")
        offset, limit = page_window(request.page)
        logged = self.read_models.timeline(request.lead_id, offset, limit)
        return reporting_pb2.GetLeadTimelineResponse(
            entries=[mappers.timeline_entry_to_proto(e, domain.summary_of(e["payload"])) for e in logged],
            page={"next_page_token": next_page_token(offset, limit, len(logged))})

    @reporting_rpc(roles={Role.ADMIN})
    def RebuildProjections(self, request, context):
        if request.rollups_only:
            job = self.read_models.rebuild_rollups(self.caller.id)
        else:
            job = self.read_models.start_rebuild(self.caller.id)
        return reporting_pb2.RebuildProjectionsResponse(job=mappers.rebuild_job_to_proto(job))

    @reporting_rpc(roles={Role.ADMIN})
    def GetRebuildJob(self, request, context):
        rolled = self.read_models.rollups
        return reporting_pb2.GetRebuildJobResponse(
            job=mappers.rebuild_job_to_proto(self.read_models.rebuild_job(request.job_id)),
            rollup_records_pending=rolled.pending(), rollups_ready=rolled.ready())

    @reporting_rpc(roles={Role.ADMIN})
    def VerifyReports(self, request, context):
        report_filter = self._filter(request.filter)
        rolled = self.read_models.rollups
        pending = rolled.pending()
        rolled.catch_up(answers.VERIFY_CATCH_UP_SECONDS)
        compared, found = answers.verify(self.read_models, report_filter)
        return reporting_pb2.VerifyReportsResponse(
            reports_compared=compared, pending_records=pending, rollups_ready=rolled.ready(),
            differences=[reporting_pb2.ReportDifference(report=report, detail=detail.lstrip(": "))
                         for report, detail in found])

    # ---- the event stream ---------------------------------------------------------------------------

    @events_rpc(roles=INTEGRATORS)
    def GetEventTypes(self, request, context):
        return stream_mappers.event_types_to_proto()

    @events_rpc(roles=INTEGRATORS)
    def Subscribe(self, requests, context):
        """Checks the first request here, so a bad one is answered before anything streams; then the
        events flow from ``_deliver`` as the client asks for them."""
        first = next(requests, None)
        if first is None:
            raise InvalidArgument([FieldViolation("num_requested", "the first request must ask for events")])
        subscription = stream.subscription_from(**stream_mappers.first_request_values(first),
                                                bounds=self.read_models.stream.bounds())
        return self._deliver(subscription, requests, _take_stream_slot())

    def _deliver(self, subscription: stream.Subscription, requests, release):
        """The responses of one subscription. A green thread reads the client's later requests (more
        events asked for; the end of its requests ends the stream); this one sends what is asked for as soon as it
        is stored (the doorbell rings for events stored by this replica, polling finds the others'),
        and a keepalive when nothing was sent for EVENT_STREAM_KEEPALIVE_SECONDS."""
        keepalive = float(config.get("EVENT_STREAM_KEEPALIVE_SECONDS", 15))
        poll = float(config.get("EVENT_STREAM_POLL_SECONDS", 1.0))
        wake, asked, ended = threading.Event(), [], []

        def read_requests():
            try:
                for request in requests:
                    asked.append(request.num_requested)
                    wake.set()
            except Exception:  # noqa: BLE001 - the client went away (cancelled, reset, disconnected)
                pass
            ended.append(True)  # or it closed its side: a client that stops asking is done
            wake.set()

        reader = eventlet.spawn(read_requests)
        doorbell.listen(wake)
        sent_at = time.monotonic()
        try:
            while True:
                wake.clear()
                while asked:
                    subscription.ask(asked.pop(0))
                if ended:
                    return
                if self.stopping():
                    raise GrpcError(code=StatusCode.UNAVAILABLE, message="the server is shutting down: subscribe "
                                    "again after your last position (another replica takes over)")
                if subscription.pending > 0:
                    bounds = self.read_models.stream.bounds()
                    subscription.check_still_kept(bounds)
                    found, read_up_to, waiting = self.read_models.stream.read(subscription, bounds.latest,
                                                                               time.monotonic())
                    subscription.after = read_up_to
                    subscription.pending -= len(found)
                    if found:
                        metrics.EVENT_STREAM_DELIVERED.inc(len(found))
                        yield from stream_mappers.responses(found, subscription.after, subscription.pending)
                        sent_at = time.monotonic()
                    if read_up_to < bounds.latest and subscription.pending > 0 and not waiting:
                        continue  # more stored already
                idle = time.monotonic() - sent_at
                if idle >= keepalive:
                    yield events_pb2.SubscribeResponse(latest_position=subscription.after,
                                                       pending_num_requested=subscription.pending)
                    sent_at, idle = time.monotonic(), 0.0
                wake.wait(max(0.0, min(poll, keepalive - idle)))
        finally:
            doorbell.leave(wake)
            reader.kill()
            release()

    @events_rpc(roles={Role.ADMIN})
    def PutWebhookSubscription(self, request, context):
        given = request.subscription
        spec = webhooks.checked_subscription(given.subscription_id, given.url, list(given.event_types),
                                             given.description)
        stored, secret = self.read_models.webhooks.put(spec)
        return events_pb2.PutWebhookSubscriptionResponse(subscription=stream_mappers.webhook_to_proto(stored),
                                                         secret=secret)

    @events_rpc(roles={Role.ADMIN})
    def ListWebhookSubscriptions(self, request, context):
        return events_pb2.ListWebhookSubscriptionsResponse(subscriptions=[
            stream_mappers.webhook_to_proto(raw, dead) for raw, dead in self.read_models.webhooks.listed()])

    @events_rpc(roles={Role.ADMIN})
    def DeleteWebhookSubscription(self, request, context):
        self.read_models.webhooks.delete(request.subscription_id)
        return events_pb2.DeleteWebhookSubscriptionResponse()

    @events_rpc(roles={Role.ADMIN})
    def ListWebhookDeadLetters(self, request, context):
        return events_pb2.ListWebhookDeadLettersResponse(dead_letters=[
            stream_mappers.dead_letter_to_proto(raw)
            for raw in self.read_models.webhooks.dead_letters_of(request.subscription_id)])

    @events_rpc(roles={Role.ADMIN})
    def ReplayWebhookDeadLetters(self, request, context):
        return events_pb2.ReplayWebhookDeadLettersResponse(
            replayed=self.read_models.webhooks.replay(request.subscription_id))

    @configured_timer("WEBHOOK_POLL_SECONDS", 1.0)
    def deliver_webhooks(self):
        """Each due subscription gets its next events, for a few seconds per tick; any replica may."""
        self.read_models.webhooks.deliver_due(
            TICK_BUDGET_SECONDS, int(config.get("WEBHOOK_MAX_ATTEMPTS", 8)),
            float(config.get("WEBHOOK_RETRY_SECONDS", 10)), float(config.get("WEBHOOK_TIMEOUT_SECONDS", 10)))

    def expire_stream(self) -> None:
        """Events older than EVENT_STREAM_RETENTION_DAYS leave the stream, a bounded batch per tick."""
        retention = timedelta(days=float(config.get("EVENT_STREAM_RETENTION_DAYS", 30)))
        self.read_models.stream.expire(utcnow() - retention)

    @configured_timer("REPORTING_TIMER_SECONDS", 2.0)
    def tick(self):
        """Apply the records marked for the roll-ups, then advance a rebuild, batch after batch, for a
        few seconds each; any replica may hold it. Refresh the business gauges every
        REPORTING_GAUGE_SECONDS."""
        global _gauges_refreshed_at
        if time.monotonic() - _gauges_refreshed_at >= float(config.get("REPORTING_GAUGE_SECONDS", 60)):
            _gauges_refreshed_at = time.monotonic()
            self.read_models.refresh_business_gauges()
        self.expire_stream()
        self.read_models.rollups.catch_up(TICK_BUDGET_SECONDS)
        deadline = time.monotonic() + TICK_BUDGET_SECONDS
        job = self.read_models.claim_rebuild()
        while job is not None and time.monotonic() < deadline:
            if not self.read_models.replay_batch(job):
                return  # done
        if job is not None:
            self.read_models.release_rebuild(job)

    # ---- reports over opportunities ------------------------------------------------------------------

    def _filter(self, message) -> reports.Filter:
        return reports.checked_filter(mappers.filter_values(message), self.caller)

    @reporting_rpc(roles=EVERYONE)
    def GetWinRate(self, request, context):
        report_filter, group_by = self._filter(request.filter), mappers.GROUP_BY_FROM_PROTO.get(request.group_by, "")
        total, rows = self.answer("win_rate", report_filter, group_by)
        return reporting_pb2.GetWinRateResponse(total=mappers.win_rate_to_proto(total),
                                                rows=[mappers.win_rate_to_proto(r) for r in rows])

    @reporting_rpc(roles=EVERYONE)
    def GetSalesCycle(self, request, context):
        report_filter, group_by = self._filter(request.filter), mappers.GROUP_BY_FROM_PROTO.get(request.group_by, "")
        total, rows, stages = self.answer("sales_cycle", report_filter, group_by)
        return reporting_pb2.GetSalesCycleResponse(
            total=mappers.cycle_to_proto(total), rows=[mappers.cycle_to_proto(r) for r in rows],
            stages=[reporting_pb2.StageTime(stage_id=stage, opportunities=n, mean_days=mean, median_days=median)
                    for stage, n, mean, median in stages])

    @reporting_rpc(roles=EVERYONE)
    def GetLossReasons(self, request, context):
        report_filter = self._filter(request.filter)
        rows, lost = self.answer("loss_reasons", report_filter)
        return reporting_pb2.GetLossReasonsResponse(
            reasons=[reporting_pb2.LossReasonRow(reason=r, lost=n, share=share) for r, n, share in rows], lost=lost)

    @reporting_rpc(roles=EVERYONE)
    def GetAccountValue(self, request, context):
        report_filter = self._filter(request.filter)
        rows = self.answer("account_value", report_filter)
        offset, limit = page_window(request.page)
        page = rows[offset:offset + limit]
        return reporting_pb2.GetAccountValueResponse(
            accounts=[mappers.account_value_to_proto(r) for r in page],
            page={"next_page_token": next_page_token(offset, limit, len(page))},
            total_won_value=reports.text(sum((r.won_value for r in rows), reports.ZERO)))

    @reporting_rpc(roles=EVERYONE)
    def GetForecast(self, request, context):
        report_filter = self._filter(request.filter)
        lines, from_model = self.answer("forecast", report_filter)
        return reporting_pb2.GetForecastResponse(
            categories=[reporting_pb2.ForecastRow(category=line.category, opportunities=line.opportunities,
                                                  amount=reports.text(line.amount),
                                                  weighted_amount=reports.text(line.weighted)) for line in lines],
            weighted_total=reports.text(sum((line.weighted for line in lines), reports.ZERO)),
            from_win_model=from_model)

    @reporting_rpc(roles=EVERYONE)
    def GetPipelineSummary(self, request, context):
        report_filter = self._filter(request.filter)
        rows, opportunities = self.answer("pipeline_summary", report_filter)
        return reporting_pb2.GetPipelineSummaryResponse(
            stages=[reporting_pb2.StageRow(stage_id=stage, opportunities=n, amount=reports.text(amount))
                    for stage, n, amount in rows], opportunities=opportunities)
