"""Prometheus metrics shared by every service (DESIGN.md §7). Defined once per process, labelled
by service, so several containers in one process (as in tests) share the registry safely."""
from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

GRPC_REQUESTS = Counter(
    "leadflow_grpc_requests_total", "gRPC calls handled, by method and status code",
    ["service", "method", "code"])
GRPC_LATENCY = Histogram(
    "leadflow_grpc_request_seconds", "gRPC call handling time", ["service", "method"],
    buckets=LATENCY_BUCKETS)
GATEWAY_REQUESTS = Counter(
    "leadflow_gateway_requests_total", "HTTP API calls through the gateway, by operation and HTTP status",
    ["operation", "status"])
GATEWAY_LATENCY = Histogram(
    "leadflow_gateway_request_seconds", "HTTP API call time through the gateway, backend call included",
    ["operation"], buckets=LATENCY_BUCKETS)
EVENTS_HANDLED = Counter(
    "leadflow_events_handled_total", "Events handled, by handler and outcome "
    "(ok, duplicate, retried, dead_lettered)", ["service", "handler", "outcome"])
EVENT_LATENCY = Histogram(
    "leadflow_event_handling_seconds", "Event handler time", ["service", "handler"],
    buckets=LATENCY_BUCKETS)
EVENT_BATCH_SIZE = Histogram(
    "leadflow_event_batch_size", "Events handled together in one batch", ["service", "handler"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500))
EVENT_BATCHES_SPLIT = Counter(
    "leadflow_event_batches_split_total", "Batches that failed and were run again event by event",
    ["service", "handler"])
TRANSACTIONS = Counter(
    "leadflow_store_transactions_total", "Store transactions committed", ["service"])
TRANSACTION_RETRIES = Counter(
    "leadflow_store_transaction_retries_total", "Store transactions run again after losing to a concurrent "
    "writer, by reason (write_conflict, commit_conflict, stale_write)", ["service", "reason"])
OUTBOX_BACKLOG = Gauge(
    "leadflow_outbox_backlog", "Outbox documents (one per transaction that published events) not yet published",
    ["service"])
OUTBOX_PUBLISHED = Counter(
    "leadflow_outbox_published_total", "Events published from the outbox", ["service", "event_type"])

# Business metrics.
LEADS_CAPTURED = Counter(
    "leadflow_capture_leads_captured_total", "Leads captured, by source", ["source"])
LEADS_MERGED = Counter(
    "leadflow_capture_leads_merged_total", "Captures recognised as a known lead (same email or phone) and merged")
ACTIVITIES_RECORDED = Counter(
    "leadflow_capture_activities_recorded_total", "Lead and visitor behaviour recorded, by activity type", ["type"])
CARDS_SCANNED = Counter(
    "leadflow_capture_business_cards_scanned_total", "Business cards read by OCR, by outcome (confident, review)",
    ["outcome"])
IMPORT_ROWS = Counter(
    "leadflow_capture_import_rows_total", "Rows of imported lead files, by outcome", ["outcome"])
PUBLIC_REJECTED = Counter(
    "leadflow_capture_public_rejected_total",
    "Public form, webhook and beacon requests refused, by endpoint and reason", ["endpoint", "reason"])
LEADS_SCORED = Counter("leadflow_scoring_leads_scored_total", "Leads scored")
LEADS_QUALIFIED = Counter("leadflow_scoring_mqls_total", "Leads that became marketing-qualified")
WIN_MODEL_TRAININGS = Counter("leadflow_scoring_win_model_trainings_total",
                              "Win-model trainings by result (live: promoted, rejected: worse than live)", ["status"])
WIN_MODEL_TRAINED_ROC_AUC = Gauge("leadflow_scoring_win_model_trained_roc_auc",
                                  "The live win model's cross-validated ROC-AUC when it was trained")
WIN_MODEL_REALISED_ROC_AUC = Gauge("leadflow_scoring_win_model_realised_roc_auc",
                                   "ROC-AUC of the live win model's predictions on new leads whose outcome is known "
                                   "(NaN until a win and a loss are known)")
WIN_MODEL_REALISED_BRIER = Gauge("leadflow_scoring_win_model_realised_brier",
                                 "Brier score of the live win model's predictions on new leads whose outcome is known")
WIN_MODEL_REALISED_OUTCOMES = Gauge("leadflow_scoring_win_model_realised_outcomes",
                                    "New leads predicted by the live win model whose outcome is known")


def export_win_model_performance(trained_roc_auc: float | None, realised) -> None:
    """``realised``: win_model.RealisedPerformance of the live model; None (no model) blanks the gauges."""
    nan = float("nan")
    WIN_MODEL_TRAINED_ROC_AUC.set(nan if trained_roc_auc is None else trained_roc_auc)
    WIN_MODEL_REALISED_OUTCOMES.set(realised.outcomes if realised else 0)
    WIN_MODEL_REALISED_ROC_AUC.set(nan if realised is None or realised.roc_auc is None else realised.roc_auc)
    WIN_MODEL_REALISED_BRIER.set(nan if realised is None or realised.brier is None else realised.brier)


ASSIGNMENT_LATENCY = Histogram(
    "leadflow_routing_assignment_latency_seconds", "Lead captured -> assigned to a rep",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
TASKS_CREATED = Counter("leadflow_routing_tasks_created_total", "Follow-up tasks created")
LEADS_ASSIGNED = Counter("leadflow_routing_assignments_total", "Leads assigned to a rep, by strategy", ["strategy"])
LEADS_QUEUED = Counter("leadflow_routing_leads_queued_total",
                       "Leads put in the fallback queue (no rule matched, no rep available, escalations exhausted)")
FALLBACK_QUEUE = Gauge("leadflow_routing_fallback_queue_leads", "Leads waiting in the fallback queue now")
ROUTING_DECISION_SECONDS = Histogram(
    "leadflow_routing_decision_seconds", "lead_qualified received -> assignment stored",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
SLA_WARNINGS = Counter("leadflow_routing_sla_warnings_total", "First-response tasks that reached their warning point")
SLA_BREACHES = Counter("leadflow_routing_sla_breaches_total", "First-response tasks whose deadline passed while open")
ESCALATIONS = Counter("leadflow_routing_escalations_total", "Escalations of breached first responses, by action "
                      "(reassign, notify_manager, queue)", ["action"])
REASSIGNMENTS = Counter("leadflow_routing_reassignments_total", "Changes of owner after the first assignment",
                        ["kind"])
FIRST_TOUCH_SECONDS = Histogram(
    "leadflow_routing_first_touch_seconds", "Lead assigned -> first touch (first contact or completed task)",
    buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200))
NOTIFICATIONS = Counter("leadflow_routing_notifications_total", "Notifications sent, by kind and channel",
                        ["kind", "channel"])
LEADS_CONTACTED = Counter("leadflow_opportunity_leads_contacted_total", "Leads contacted for the first time")
LEADS_CONVERTED = Counter("leadflow_opportunity_leads_converted_total", "Leads converted into opportunities")
LEADS_SALES_VERDICTS = Counter("leadflow_opportunity_sales_verdicts_total",
                               "Sales' verdicts on leads (qualified, disqualified, recycle)", ["outcome"])
OPPORTUNITIES_WON = Counter("leadflow_opportunity_won_total", "Opportunities closed won")
OPPORTUNITIES_IMPORTED = Counter("leadflow_opportunity_imported_total", "Historical opportunities imported")
OPPORTUNITIES_LOST = Counter("leadflow_opportunity_lost_total", "Opportunities closed lost")

_KNOWN_SOURCES: set[str] = set()
MAX_SOURCE_LABELS = 50


def source_label(source: str) -> str:
    """Sources are free text; keep the label set bounded so one bad client cannot explode it."""
    if source in _KNOWN_SOURCES or len(_KNOWN_SOURCES) < MAX_SOURCE_LABELS:
        _KNOWN_SOURCES.add(source)
        return source
    return "other"

# Reporting's business gauges are recomputed from the shared read models by every replica: aggregate
# them with max (not sum) across replicas. Labels stay bounded: pipelines and stages are configuration.
OPEN_PIPELINE_VALUE = Gauge("leadflow_reporting_open_pipeline_value", "Amount of open opportunities, by stage",
                            ["pipeline_id", "stage_id", "currency"])
OPEN_PIPELINE_OPPORTUNITIES = Gauge("leadflow_reporting_open_opportunities", "Open opportunities, by stage",
                                    ["pipeline_id", "stage_id"])
WON_VALUE = Gauge("leadflow_reporting_won_value", "Value of every opportunity won so far", ["currency"])
SPEED_TO_LEAD = Histogram(
    "leadflow_reporting_speed_to_lead_seconds", "Lead captured -> first human contact",
    buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800))
EVENT_STREAM_SUBSCRIBERS = Gauge("leadflow_event_stream_subscribers", "Event stream subscriptions open on this "
                                 "replica")
EVENT_STREAM_DELIVERED = Counter("leadflow_event_stream_delivered_total", "Events sent to event stream subscribers")
EVENT_STREAM_POSITION = Gauge("leadflow_event_stream_position", "The event stream's latest position")
EVENT_STREAM_EXPIRED = Counter("leadflow_event_stream_expired_total", "Events removed from the event stream after "
                               "the retention period")
WEBHOOK_DELIVERIES = Counter("leadflow_webhook_deliveries_total", "Event deliveries to webhook subscriptions, by "
                             "outcome (ok, failed)", ["outcome"])
WEBHOOK_DEAD_LETTERS = Counter("leadflow_webhook_dead_letters_total", "Webhook deliveries given up after "
                               "WEBHOOK_MAX_ATTEMPTS")
