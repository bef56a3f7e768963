"""``leadflow``: the operator's command line for a running Leadflow.

Tokens come from --token, else LEADFLOW_TOKEN, else the development credentials ``make run``
wrote to .leadflow/credentials.json (as --as PRINCIPAL, default admin).
"""
import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path

import grpc
import yaml
from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict
from grpc_health.v1 import health_pb2
from leadflow.capture.v1 import capture_pb2
from leadflow.common.v1 import common_pb2
from leadflow.events.v1 import events_pb2
from leadflow.opportunity.v1 import opportunity_pb2
from leadflow.reporting.v1 import reporting_pb2
from leadflow.routing.v1 import routing_pb2
from leadflow.scoring.v1 import scoring_pb2

from services.cli import dead_letters, events
from services.cli.history import history_requests
from services.cli.progress import new_import_id, run_import
from services.cli.client import LeadflowClient
from services.common.auth import Principal, Role, new_token, token_entry
from services.common.settings import DEFAULTS, SERVICE_NAMES

DEV_CREDENTIALS = Path(".leadflow/credentials.json")


def _token(args) -> str:
    if args.token:
        return args.token
    if os.environ.get("LEADFLOW_TOKEN"):
        return os.environ["LEADFLOW_TOKEN"]
    if DEV_CREDENTIALS.exists():
        return json.loads(DEV_CREDENTIALS.read_text()).get(args.as_principal, "")
    return ""


def _print(message) -> None:
    print(json.dumps(MessageToDict(message, preserving_proto_field_name=True), indent=2, ensure_ascii=False))


def cmd_health(client, args) -> int:
    unhealthy = 0
    for service in SERVICE_NAMES:
        try:
            status = client.health(service).Check(health_pb2.HealthCheckRequest(), timeout=5).status
            text = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
        except grpc.RpcError as exc:
            status, text = None, f"unreachable ({exc.code().name})"
        unhealthy += status != health_pb2.HealthCheckResponse.SERVING
        print(f"{service:12} {client.addresses[service]:22} {text}")
    return 1 if unhealthy else 0


def cmd_lead_submit(client, args) -> int:
    response = client.capture.SubmitLead(capture_pb2.SubmitLeadRequest(
        lead=capture_pb2.LeadInput(
            email=args.email, phone=args.phone, first_name=args.first_name, last_name=args.last_name,
            company=args.company, title=args.title, country=args.country, industry=args.industry,
            company_size=args.company_size, marketing_consent=args.consent,
            attribution=common_pb2.Attribution(source=args.source, medium=args.medium, campaign=args.campaign)),
        idempotency_key=args.idempotency_key))
    _print(response)
    return 0


def _optional(call):
    try:
        return call()
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise


def cmd_lead_show(client, args) -> int:
    lead = client.capture.GetLead(capture_pb2.GetLeadRequest(lead_id=args.lead_id)).lead
    score = _optional(lambda: client.scoring.GetLeadScore(scoring_pb2.GetLeadScoreRequest(lead_id=args.lead_id)))
    assignment = _optional(lambda: client.routing.GetAssignment(
        routing_pb2.GetAssignmentRequest(lead_id=args.lead_id)))
    view = {"lead": MessageToDict(lead, preserving_proto_field_name=True),
            "score": MessageToDict(score.score, preserving_proto_field_name=True) if score else None,
            "assignment": MessageToDict(assignment.assignment, preserving_proto_field_name=True)
            if assignment else None}
    print(json.dumps(view, indent=2, ensure_ascii=False))
    return 0


IMPORT_CHUNK = 1024 * 1024


def cmd_lead_import(client, args) -> int:
    """Stream a CSV or XLSX file to capture in 1 MiB chunks and print the import report."""
    path = Path(args.file)
    mapping = dict(item.split("=", 1) for item in args.map)
    import_id = new_import_id()

    def messages():
        yield capture_pb2.ImportLeadFileRequest(header=capture_pb2.ImportHeader(
            filename=path.name, mapping=mapping, save_mapping=args.save_mapping, tags=args.tag,
            attribution=common_pb2.Attribution(source=args.source, medium=args.medium, campaign=args.campaign),
            default_country=args.country, external_id_prefix=args.id_prefix, dry_run=args.dry_run,
            import_id=import_id))
        with path.open("rb") as file:
            while chunk := file.read(IMPORT_CHUNK):
                yield capture_pb2.ImportLeadFileRequest(chunk=chunk)

    report = run_import(client.capture.ImportLeadFile, messages(), lambda import_id: client.capture.GetImportProgress(
        capture_pb2.GetImportProgressRequest(import_id=import_id)).progress, import_id)
    print(f"{report.rows} rows: {report.accepted} new, {report.merged} merged, {report.unchanged} unchanged, "
          f"{report.rejected} rejected{' (dry run, nothing stored)' if report.dry_run else ''}")
    for column, target in sorted(report.mapping.items()):
        print(f"  {column:40} -> {target}")
    for rejected in report.rejected_rows:
        print(f"  row {rejected.row} ({rejected.column or '-'}): {rejected.reason}")
    return 0


def cmd_opportunity_import(client, args) -> int:
    """Upload a sales history (opportunities, and optionally accounts, sales teams, products)."""
    files = {table: path for table, path in (("opportunities", args.opportunities), ("accounts", args.accounts),
                                             ("sales_teams", args.sales_teams), ("products", args.products))
             if path}
    header = opportunity_pb2.OpportunityImportHeader(
        pipeline_id=args.pipeline, currency=args.currency, external_id_prefix=args.id_prefix,
        stage_map=dict(item.split("=", 1) for item in args.stage),
        owner_ids=dict(item.split("=", 1) for item in args.owner), default_team=args.team, dry_run=args.dry_run,
        import_id=new_import_id())
    report = run_import(client.opportunity.ImportOpportunities, history_requests(header, files),
                        lambda import_id: client.opportunity.GetImportProgress(
                            opportunity_pb2.GetImportProgressRequest(import_id=import_id)).progress, header.import_id)
    print(f"{report.rows} opportunity rows: {report.imported} imported, {report.unchanged} unchanged, "
          f"{report.rejected} rejected, {report.accounts_created} accounts created"
          f"{' (dry run, nothing stored)' if report.dry_run else ''}")
    for stage, count in sorted(report.by_stage.items()):
        print(f"  {stage:30} {count}")
    for table, mapping in sorted(report.mappings.items()):
        print(f"  {table}: {mapping}")
    for note in report.notes:
        print(f"  note: {note}")
    tables = {number: name for name, number in opportunity_pb2.ImportTable.items()}
    for rejected in report.rejections:
        table = tables[rejected.table].removeprefix("IMPORT_TABLE_").lower()
        print(f"  {table} row {rejected.row} ({rejected.column or '-'}): {rejected.reason}")
    return 0


def cmd_opportunity_list(client, args) -> int:
    response = client.opportunity.ListOpportunities(opportunity_pb2.ListOpportunitiesRequest(
        owner_id=args.owner, pipeline_id=args.pipeline, stage_id=args.stage,
        page=common_pb2.PageRequest(page_size=args.limit)))
    for item in response.opportunities:
        print(f"{item.opportunity_id}  {item.stage_id:14} {item.amount or '-':>10} {item.currency:3}  "
              f"{item.owner_id:20} {item.name}")
    return 0


def cmd_lead_search(client, args) -> int:
    response = client.capture.SearchLeads(capture_pb2.SearchLeadsRequest(
        text=args.text, source=args.source, tag=args.tag, possible_duplicates_only=args.duplicates,
        needs_review_only=args.needs_review, page=common_pb2.PageRequest(page_size=args.limit)))
    for lead in response.leads:
        name = f"{lead.first_name} {lead.last_name}".strip()
        print(f"{lead.lead_id}  {lead.email or lead.phone_e164 or lead.external_id:40} {name:24} "
              f"{lead.company[:30]:30} {lead.attribution.source}")
    return 0


def cmd_card_scan(client, args) -> int:
    response = client.capture.ScanBusinessCard(capture_pb2.ScanBusinessCardRequest(
        image=Path(args.image).read_bytes(), read_only=args.read_only, tags=args.tag,
        default_region=args.region, attribution=common_pb2.Attribution(source="business_card", campaign=args.campaign)),
        timeout=120)
    for found in response.fields:
        print(f"  {found.name:12} {found.value:40} {found.confidence:.0%}")
    if response.HasField("lead"):
        print(f"lead {response.lead.lead_id} ({'new' if response.created else 'merged'})"
              f"{', marked for review' if response.needs_review else ''}")
    return 0


def cmd_funnel(client, args) -> int:
    funnel = client.reporting.GetFunnel(reporting_pb2.GetFunnelRequest(source=args.source))
    for step in funnel.steps:
        name = reporting_pb2.FunnelStage.Name(step.stage).removeprefix("FUNNEL_STAGE_").lower()
        print(f"{name:16} {step.leads:8}  {step.conversion_from_previous:7.1%}  -{step.dropped}")
    return 0


REPORT_KINDS = {name.removeprefix("REPORT_KIND_").lower().replace("_", "-"): number
                for name, number in reporting_pb2.ReportKind.items() if number}
GROUPINGS = {name.removeprefix("GROUP_BY_").lower(): number for name, number in reporting_pb2.GroupBy.items() if number}


def cmd_report(client, args) -> int:
    """Any report, as CSV on standard output (or into --out); ``verify`` compares the roll-ups with
    the records instead and exits 1 on any difference."""
    report_filter = reporting_pb2.ReportFilter(
        period_start=args.start, period_end=args.end, pipeline_id=args.pipeline, team=args.team,
        owner_id=args.owner, source=args.source, campaign=args.campaign, currency=args.currency)
    if args.kind == "verify":
        checked = client.reporting.VerifyReports(reporting_pb2.VerifyReportsRequest(filter=report_filter),
                                                 timeout=600)
        for difference in checked.differences:
            print(f"{difference.report}: {difference.detail}")
        state = "" if checked.rollups_ready else " (the roll-ups are still being built over earlier records)"
        print(f"{checked.reports_compared} reports compared, {len(checked.differences)} differences, "
              f"{checked.pending_records} records were waiting to be applied{state}")
        return 1 if checked.differences else 0
    exported = client.reporting.ExportReport(reporting_pb2.ExportReportRequest(
        report=REPORT_KINDS[args.kind], filter=report_filter, group_by=GROUPINGS.get(args.by, 0),
        by_campaign=args.by == "campaign"))
    if args.out:
        Path(args.out).write_bytes(exported.csv)
        print(f"written to {args.out}")
    else:
        sys.stdout.write(exported.csv.decode("utf-8"))
    return 0


def cmd_rep_put(client, args) -> int:
    status = routing_pb2.REP_STATUS_PAUSED if args.paused else routing_pb2.REP_STATUS_ACTIVE
    hours = dict(item.split("=", 1) for item in args.hours)  # mon=09:00-18:00
    _print(client.routing.PutRep(routing_pb2.PutRepRequest(rep=routing_pb2.Rep(
        rep_id=args.rep_id, name=args.name, team=args.team, email=args.email, status=status, role=args.role,
        territories=args.territory, industries=args.industry, size_bands=args.size, languages=args.language,
        skills=args.skill, weight=args.weight, capacity=args.capacity, time_zone=args.time_zone,
        working_hours=hours, holidays=args.holiday))))
    return 0


def cmd_rep_away(client, args) -> int:
    request = routing_pb2.SetRepAvailabilityRequest(
        rep_id=args.rep_id, away_note=args.note,
        status=routing_pb2.REP_STATUS_PAUSED if args.paused else routing_pb2.REP_STATUS_ACTIVE)
    if args.away_from:
        request.away_from.FromDatetime(datetime.fromisoformat(args.away_from))
        request.away_until.FromDatetime(datetime.fromisoformat(args.away_until))
    _print(client.routing.SetRepAvailability(request))
    return 0


def cmd_team_put(client, args) -> int:
    _print(client.routing.PutTeam(routing_pb2.PutTeamRequest(team=routing_pb2.Team(
        team_id=args.team_id, name=args.name, managers=args.manager, webhook_url=args.webhook))))
    return 0


def cmd_assignment_show(client, args) -> int:
    _print(client.routing.GetAssignment(routing_pb2.GetAssignmentRequest(lead_id=args.lead_id)))
    return 0


def cmd_assignment_queue(client, args) -> int:
    _print(client.routing.ListFallbackQueue(routing_pb2.ListFallbackQueueRequest(page={"page_size": args.limit})))
    return 0


def cmd_assignment_move(client, args) -> int:
    _print(client.routing.ReassignLead(routing_pb2.ReassignLeadRequest(
        lead_id=args.lead_id, rep_id=args.to, reason=args.reason)))
    return 0


def cmd_task_list(client, args) -> int:
    status = routing_pb2.TASK_STATUS_OPEN if args.open else routing_pb2.TASK_STATUS_UNSPECIFIED
    _print(client.routing.ListTasks(routing_pb2.ListTasksRequest(rep_id=args.rep, status=status)))
    return 0


def cmd_task_done(client, args) -> int:
    _print(client.routing.CompleteTask(routing_pb2.CompleteTaskRequest(task_id=args.task_id)))
    return 0


def cmd_rep_list(client, args) -> int:
    _print(client.routing.ListReps(routing_pb2.ListRepsRequest(team=args.team)))
    return 0


def cmd_activity_log(client, args) -> int:
    activity_type = opportunity_pb2.ActivityType.Value(f"ACTIVITY_TYPE_{args.type.upper()}")
    _print(client.opportunity.LogActivity(opportunity_pb2.LogActivityRequest(
        lead_id=args.lead_id, type=activity_type, subject=args.subject, body=args.body, outcome=args.outcome)))
    return 0


CONFIG_KINDS = ("ScoringModel", "RoutingPolicy", "Pipeline")


def cmd_config_apply(client, args) -> int:
    """Apply every document of a YAML file ({kind, spec}); each is validated by its service first."""
    documents = [d for d in yaml.safe_load_all(Path(args.file).read_text(encoding="utf-8")) if d]
    for index, document in enumerate(documents):
        kind = document.get("kind") if isinstance(document, dict) else None
        if kind not in CONFIG_KINDS or not isinstance(document.get("spec"), dict):
            print(f"error: document {index + 1}: needs kind (one of {', '.join(CONFIG_KINDS)}) and a spec mapping",
                  file=sys.stderr)
            return 2
    for document in documents:
        definition = struct_pb2.Struct()
        definition.update(document["spec"])
        if document["kind"] == "Pipeline":
            pipeline = client.opportunity.PutPipeline(opportunity_pb2.PutPipelineRequest(
                definition=definition, validate_only=args.validate_only)).pipeline
            print(f"Pipeline {pipeline.pipeline_id}: valid" if args.validate_only else
                  f"Pipeline {pipeline.pipeline_id}: version {pipeline.version} is live")
            continue
        if document["kind"] == "RoutingPolicy":
            policy = client.routing.PutRoutingPolicy(routing_pb2.PutRoutingPolicyRequest(
                definition=definition, validate_only=args.validate_only)).policy
            print("RoutingPolicy: valid" if args.validate_only else f"RoutingPolicy: {policy.version} is live")
            continue
        response = client.scoring.PutScoringModel(scoring_pb2.PutScoringModelRequest(
            definition=definition, validate_only=args.validate_only, rescore=args.rescore))
        if args.validate_only:
            print("ScoringModel: valid")
        else:
            job = f" (rescoring {response.rescore_job.total} leads: job {response.rescore_job.job_id})" \
                if response.rescore_job.job_id else ""
            print(f"ScoringModel: {response.model.version} is live{job}")
    return 0


def cmd_config_get(client, args) -> int:
    if args.what == "pipeline":
        kind = "Pipeline"
        stored = client.opportunity.GetPipeline(opportunity_pb2.GetPipelineRequest(
            pipeline_id=args.id, version=args.version)).pipeline
        label = f"{stored.pipeline_id}@{stored.version}"
    elif args.what == "routing-policy":
        kind = "RoutingPolicy"
        stored = client.routing.GetRoutingPolicy(routing_pb2.GetRoutingPolicyRequest(number=args.version)).policy
        label = stored.version
    else:
        kind = "ScoringModel"
        stored = client.scoring.GetScoringModel(scoring_pb2.GetScoringModelRequest(number=args.version)).model
        label = stored.version
    print(f"# {label}{' (live)' if stored.live else ''}")
    print(yaml.safe_dump({"kind": kind, "spec": MessageToDict(stored.definition)}, allow_unicode=True,
                         sort_keys=False), end="")
    return 0


def cmd_score_show(client, args) -> int:
    _print(client.scoring.GetLeadScore(scoring_pb2.GetLeadScoreRequest(lead_id=args.lead_id)).score)
    return 0


def cmd_score_list(client, args) -> int:
    qualified = {"yes": scoring_pb2.QUALIFIED_FILTER_QUALIFIED, "no": scoring_pb2.QUALIFIED_FILTER_NOT_QUALIFIED}
    request = scoring_pb2.ListLeadScoresRequest(grade=args.grade, qualified=qualified.get(args.mql, 0),
                                                page=common_pb2.PageRequest(page_size=args.limit))
    if args.min is not None:
        request.min_total = args.min
    for score in client.scoring.ListLeadScores(request).scores:
        probability = f"{score.win_probability:.2f}" if score.has_win_probability else "-"
        print(f"{score.lead_id}  total {score.total:4}  grade {score.grade}  "
              f"{'MQL' if score.qualified else '   '}  win {probability}  {','.join(score.tags)}")
    return 0


def cmd_score_rescore(client, args) -> int:
    _print(client.scoring.RescoreLeads(scoring_pb2.RescoreLeadsRequest()).job)
    return 0


def cmd_win_model_train(client, args) -> int:
    config = scoring_pb2.WinModelConfig(label_field=args.label, exclude=args.exclude, fields=args.field,
                                        ignore_behaviour=args.ignore_behaviour)
    if args.time_holdout:
        config.holdout = scoring_pb2.HOLDOUT_KIND_TIME
    model = client.scoring.TrainWinModel(scoring_pb2.TrainWinModelRequest(config=config, force=args.force),
                                         timeout=600).model
    print(f"{model.version}: {model.status} ({model.status_reason})")
    print(f"{model.model_kind.replace('_', ' ')}, {model.folds}-fold cross-validated ROC-AUC {model.roc_auc:.3f} "
          f"± {model.roc_auc_sd:.3f}, Brier "
          f"{model.brier:.3f} ± {model.brier_sd:.3f}, calibration {model.calibration_method}; baselines on the same "
          f"folds: logistic regression {model.logistic_roc_auc:.3f}, naive Bayes {model.baseline_roc_auc:.3f}; "
          f"refit on all {model.train_examples} leads in {model.training_seconds:.1f} s")
    return 0


def cmd_win_model_show(client, args) -> int:
    _print(client.scoring.GetWinModel(scoring_pb2.GetWinModelRequest(number=args.version)).model)
    return 0


def cmd_token_new(client, args) -> int:
    token = new_token()
    print(f"token (give it to the caller; it is not stored anywhere): {token}")
    print(f"LEADFLOW_AUTH_TOKENS entry: {token_entry(Principal(args.principal, Role(args.role), args.team), token)}")
    return 0


def cmd_dead_letters(client, args) -> int:
    amqp_uri = os.environ.get("AMQP_URI", DEFAULTS["AMQP_URI"])
    if args.action == "list":
        for letter in dead_letters.peek(amqp_uri):
            print(json.dumps(letter, ensure_ascii=False))
    else:
        print(f"replayed {dead_letters.replay(amqp_uri)} dead letters to their original queues")
    return 0


def cmd_events_tail(client, args) -> int:
    try:
        request = events.first_request(args.start, [t for t in args.types.split(",") if t], args.subject or "",
                                       args.subject_id)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    metadata = [("authorization", f"Bearer {client.token}")] if client.token else []
    events.tail(client.event_stream, metadata, request, sys.stdout, limit=args.limit, idle_exit=args.idle_exit)
    return 0


def cmd_events_types(client, args) -> int:
    _print(client.events.GetEventTypes(events_pb2.GetEventTypesRequest()))
    return 0


def cmd_webhook_put(client, args) -> int:
    answer = client.events.PutWebhookSubscription(events_pb2.PutWebhookSubscriptionRequest(
        subscription=events_pb2.WebhookSubscription(subscription_id=args.id, url=args.url,
                                                    event_types=[t for t in args.types.split(",") if t],
                                                    description=args.description)))
    _print(answer.subscription)
    if answer.secret:
        print(f"signing secret (shown once; the receiver checks X-Leadflow-Signature with it): {answer.secret}")
    return 0


def cmd_webhook_list(client, args) -> int:
    for subscription in client.events.ListWebhookSubscriptions(events_pb2.ListWebhookSubscriptionsRequest()) \
            .subscriptions:
        print(f"{subscription.subscription_id:20} position {subscription.position:<8} "
              f"dead letters {subscription.dead_letters:<4} {subscription.url}  "
              f"[{', '.join(subscription.event_types)}]"
              + (f"  failing ({subscription.failed_attempts}): {subscription.last_error}"
                 if subscription.failed_attempts else ""))
    return 0


def cmd_webhook_delete(client, args) -> int:
    client.events.DeleteWebhookSubscription(events_pb2.DeleteWebhookSubscriptionRequest(subscription_id=args.id))
    print(f"deleted {args.id}")
    return 0


def cmd_webhook_dead_letters(client, args) -> int:
    for letter in client.events.ListWebhookDeadLetters(events_pb2.ListWebhookDeadLettersRequest(
            subscription_id=args.id)).dead_letters:
        print(f"position {letter.position:<8} {letter.event_type:26} {letter.event_id}  "
              f"{letter.attempts} attempts, last: {letter.last_error}")
    return 0


def cmd_webhook_replay(client, args) -> int:
    replayed = client.events.ReplayWebhookDeadLetters(events_pb2.ReplayWebhookDeadLettersRequest(
        subscription_id=args.id)).replayed
    print(f"{replayed} dead-lettered deliveries of {args.id} will be delivered again")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leadflow", description=__doc__.splitlines()[0])
    parser.add_argument("--token", default="", help="bearer token (default: $LEADFLOW_TOKEN or dev credentials)")
    parser.add_argument("--as", dest="as_principal", default="admin",
                        help="which development principal to act as (from .leadflow/credentials.json)")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("health", help="gRPC health of every service").set_defaults(run=cmd_health)

    lead = commands.add_parser("lead", help="submit, show, import or search leads").add_subparsers(
        dest="action", required=True)
    submit = lead.add_parser("submit", help="submit one lead through capture")
    for name in ("email", "phone", "first-name", "last-name", "company", "title", "country", "industry",
                 "medium", "campaign", "idempotency-key"):
        submit.add_argument(f"--{name}", default="")
    submit.add_argument("--source", required=True)
    submit.add_argument("--company-size", type=int, default=0)
    submit.add_argument("--consent", action="store_true", help="the lead agreed to marketing contact")
    submit.set_defaults(run=cmd_lead_submit)
    show = lead.add_parser("show", help="a lead with its score and assignment")
    show.add_argument("lead_id")
    show.set_defaults(run=cmd_lead_show)

    importing = lead.add_parser("import", help="import a CSV or XLSX file and print the report")
    importing.add_argument("file")
    importing.add_argument("--source", required=True, help="attribution of rows without a source column")
    importing.add_argument("--medium", default="")
    importing.add_argument("--campaign", default="")
    importing.add_argument("--map", action="append", default=[], metavar="COLUMN=FIELD",
                           help="column mapping (default: the source's saved mapping, else guessed)")
    importing.add_argument("--save-mapping", action="store_true", help="remember the mapping for this source")
    importing.add_argument("--tag", action="append", default=[])
    importing.add_argument("--country", default="", help="country of phone numbers without a country code")
    importing.add_argument("--id-prefix", default="", help="prefix for external ids from this file")
    importing.add_argument("--dry-run", action="store_true", help="validate and report, store nothing")
    importing.set_defaults(run=cmd_lead_import)
    search = lead.add_parser("search", help="find leads by words, source, tag or flags")
    search.add_argument("text", nargs="?", default="")
    search.add_argument("--source", default="")
    search.add_argument("--tag", default="")
    search.add_argument("--duplicates", action="store_true", help="only possible duplicates")
    search.add_argument("--needs-review", action="store_true")
    search.add_argument("--limit", type=int, default=50)
    search.set_defaults(run=cmd_lead_search)

    card = commands.add_parser("card", help="business cards").add_subparsers(dest="action", required=True)
    scan = card.add_parser("scan", help="read a business card photo (JPEG/PNG) and create its lead")
    scan.add_argument("image")
    scan.add_argument("--read-only", action="store_true", help="only read the card")
    scan.add_argument("--region", default="CN", help="region of phone numbers without a country code")
    scan.add_argument("--campaign", default="")
    scan.add_argument("--tag", action="append", default=[])
    scan.set_defaults(run=cmd_card_scan)

    report = commands.add_parser("report", help="any report as CSV: win-rate, forecast, speed-to-lead...; "
                                                "verify: roll-ups against records (admin)")
    report.add_argument("kind", choices=[*sorted(REPORT_KINDS), "verify"])
    report.add_argument("--by", default="", choices=["", *sorted(GROUPINGS), "campaign"],
                        help="rows per owner, team, office... (campaign: source performance per campaign)")
    report.add_argument("--from", dest="start", default="", metavar="YYYY-MM-DD")
    report.add_argument("--to", dest="end", default="", metavar="YYYY-MM-DD")
    for option in ("pipeline", "team", "owner", "source", "campaign", "currency"):
        report.add_argument(f"--{option}", default="")
    report.add_argument("--out", default="", help="write the CSV to this file")
    report.set_defaults(run=cmd_report)
    funnel = commands.add_parser("funnel", help="the lead funnel")
    funnel.add_argument("--source", default="")
    funnel.set_defaults(run=cmd_funnel)

    rep = commands.add_parser("rep", help="manage reps").add_subparsers(dest="action", required=True)
    put = rep.add_parser("put", help="create or replace a rep")
    put.add_argument("rep_id")
    put.add_argument("--name", required=True)
    put.add_argument("--team", required=True)
    put.add_argument("--email", default="")
    put.add_argument("--paused", action="store_true")
    put.add_argument("--role", default="", help="sdr (default), ae or manager")
    put.add_argument("--territory", action="append", default=[], help="country code, region or city (repeat)")
    put.add_argument("--industry", action="append", default=[])
    put.add_argument("--size", action="append", default=[], help='company-size band, "1-50" or "1000+"')
    put.add_argument("--language", action="append", default=[])
    put.add_argument("--skill", action="append", default=[])
    put.add_argument("--weight", type=int, default=1)
    put.add_argument("--capacity", type=int, default=0, help="most open leads (0: no limit)")
    put.add_argument("--time-zone", default="", help="IANA name, e.g. Asia/Shanghai")
    put.add_argument("--hours", action="append", default=[], help="working hours, e.g. mon=09:00-18:00 (repeat)")
    put.add_argument("--holiday", action="append", default=[], help="a day off, YYYY-MM-DD (repeat)")
    put.set_defaults(run=cmd_rep_put)
    reps = rep.add_parser("list", help="list reps with their open leads")
    reps.add_argument("--team", default="")
    reps.set_defaults(run=cmd_rep_list)
    away = rep.add_parser("away", help="out of office from/until (ISO times), paused, or back (no times)")
    away.add_argument("rep_id")
    away.add_argument("--from", dest="away_from", default="")
    away.add_argument("--until", dest="away_until", default="")
    away.add_argument("--note", default="")
    away.add_argument("--paused", action="store_true")
    away.set_defaults(run=cmd_rep_away)

    team = commands.add_parser("team", help="manage teams").add_subparsers(dest="action", required=True)
    team_put = team.add_parser("put", help="create or replace a team")
    team_put.add_argument("team_id")
    team_put.add_argument("--name", required=True)
    team_put.add_argument("--manager", action="append", default=[], help="rep id of a manager (repeat)")
    team_put.add_argument("--webhook", default="", help="URL the team's notifications are posted to")
    team_put.set_defaults(run=cmd_team_put)

    assignment = commands.add_parser("assignment", help="who got a lead and why").add_subparsers(
        dest="action", required=True)
    assignment_show = assignment.add_parser("show", help="the decision and the history of owners")
    assignment_show.add_argument("lead_id")
    assignment_show.set_defaults(run=cmd_assignment_show)
    queue = assignment.add_parser("queue", help="leads no rep could take (the fallback queue)")
    queue.add_argument("--limit", type=int, default=50)
    queue.set_defaults(run=cmd_assignment_queue)
    move = assignment.add_parser("move", help="reassign a lead (to a rep, or by the policy)")
    move.add_argument("lead_id")
    move.add_argument("--to", default="", help="rep id; empty lets the policy choose")
    move.add_argument("--reason", required=True)
    move.set_defaults(run=cmd_assignment_move)

    task = commands.add_parser("task", help="follow-up tasks").add_subparsers(dest="action", required=True)
    task_list = task.add_parser("list", help="tasks by due time")
    task_list.add_argument("--rep", default="")
    task_list.add_argument("--open", action="store_true")
    task_list.set_defaults(run=cmd_task_list)
    task_done = task.add_parser("done", help="complete a task")
    task_done.add_argument("task_id")
    task_done.set_defaults(run=cmd_task_done)

    opportunity = commands.add_parser("opportunity", help="opportunities and sales history").add_subparsers(
        dest="action", required=True)
    history = opportunity.add_parser("import", help="import a sales history and print the report")
    history.add_argument("opportunities", help="CSV or XLSX, one row per opportunity")
    history.add_argument("--accounts", default="", help="CSV or XLSX of the customer companies")
    history.add_argument("--sales-teams", default="", help="CSV or XLSX of agent, manager, office")
    history.add_argument("--products", default="", help="CSV or XLSX of the product list")
    history.add_argument("--currency", required=True, help="ISO 4217 currency of the amounts")
    history.add_argument("--pipeline", default="", help="pipeline id (default new-business)")
    history.add_argument("--id-prefix", default="", help="prefix for the external ids, e.g. maven:")
    history.add_argument("--stage", action="append", default=[], metavar="WORD=STAGE",
                         help="a stage word of the file -> won, lost or a stage id")
    history.add_argument("--owner", action="append", default=[], metavar="NAME=USER_ID")
    history.add_argument("--team", default="", help="team of owners no sales team row places")
    history.add_argument("--dry-run", action="store_true", help="check and report, store nothing")
    history.set_defaults(run=cmd_opportunity_import)
    listing = opportunity.add_parser("list", help="opportunities, newest first")
    listing.add_argument("--owner", default="")
    listing.add_argument("--pipeline", default="")
    listing.add_argument("--stage", default="")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(run=cmd_opportunity_list)

    activity = commands.add_parser("activity", help="log activities").add_subparsers(dest="action", required=True)
    log = activity.add_parser("log", help="log a call, email, meeting or note on a lead")
    log.add_argument("lead_id")
    log.add_argument("--type", choices=("call", "email", "meeting", "note"), required=True)
    log.add_argument("--subject", default="")
    log.add_argument("--body", default="")
    log.add_argument("--outcome", default="")
    log.set_defaults(run=cmd_activity_log)

    token = commands.add_parser("token", help="make API tokens").add_subparsers(dest="action", required=True)
    new = token.add_parser("new", help="a new token and its LEADFLOW_AUTH_TOKENS entry")
    new.add_argument("--principal", required=True)
    new.add_argument("--role", choices=[r.value for r in Role], required=True)
    new.add_argument("--team", default="")
    new.set_defaults(run=cmd_token_new)

    configure = commands.add_parser("config", help="rules as data: apply or show").add_subparsers(
        dest="action", required=True)
    apply = configure.add_parser("apply", help="apply a YAML file of {kind, spec} documents "
                                               "(kind: ScoringModel, RoutingPolicy or Pipeline)")
    apply.add_argument("-f", "--file", required=True)
    apply.add_argument("--validate-only", action="store_true", help="check it, store nothing")
    apply.add_argument("--rescore", action="store_true", help="rescore every lead under the new model")
    apply.set_defaults(run=cmd_config_apply)
    get = configure.add_parser("get", help="print the scoring model, the routing policy or a pipeline as YAML")
    get.add_argument("what", choices=("scoring-model", "routing-policy", "pipeline"))
    get.add_argument("--id", default="new-business", help="the pipeline's id (for pipeline)")
    get.add_argument("--version", type=int, default=0, help="version number (default: the live one)")
    get.set_defaults(run=cmd_config_get)

    score = commands.add_parser("score", help="lead scores").add_subparsers(dest="action", required=True)
    score_show = score.add_parser("show", help="a lead's score with every reason and its win factors")
    score_show.add_argument("lead_id")
    score_show.set_defaults(run=cmd_score_show)
    score_list = score.add_parser("list", help="scores, highest first")
    score_list.add_argument("--grade", default="")
    score_list.add_argument("--mql", choices=("yes", "no"))
    score_list.add_argument("--min", type=int)
    score_list.add_argument("--limit", type=int, default=20)
    score_list.set_defaults(run=cmd_score_list)
    score.add_parser("rescore", help="rescore every lead in the background").set_defaults(run=cmd_score_rescore)

    win = commands.add_parser("win-model", help="the win-probability model").add_subparsers(
        dest="action", required=True)
    train = win.add_parser("train", help="train on leads with a known outcome and print the evaluation")
    train.add_argument("--label", default="outcome", help="outcome (won/lost deals) or custom.<key>")
    train.add_argument("--exclude", action="append", default=[], help="a field never to learn from (repeat)")
    train.add_argument("--field", action="append", default=[], help="learn only from these fields (repeat)")
    train.add_argument("--ignore-behaviour", action="store_true")
    train.add_argument("--time-holdout", action="store_true",
                       help="cross-validate forward in time (train on earlier leads, test on later ones)")
    train.add_argument("--force", action="store_true",
                       help="make it live even if the live settings rank the same folds better")
    train.set_defaults(run=cmd_win_model_train)
    win_show = win.add_parser("show", help="a trained model's evaluation")
    win_show.add_argument("--version", type=int, default=0)
    win_show.set_defaults(run=cmd_win_model_show)

    stream = commands.add_parser("events", help="the event stream other systems follow").add_subparsers(
        dest="action", required=True)
    tail = stream.add_parser("tail", help="print events as JSON lines as they are stored (Ctrl-C stops)")
    tail.add_argument("--from", dest="start", default="latest",
                      help="latest (default), earliest, or the last position you handled (resume after it)")
    tail.add_argument("--types", default="", help="only these event types, comma-separated (see events types)")
    tail.add_argument("--subject", choices=("lead", "opportunity", "account"), help="only events about these")
    tail.add_argument("--subject-id", default="", help="only events about this lead, opportunity or account")
    tail.add_argument("--limit", type=int, default=0, help="stop after this many events")
    tail.add_argument("--idle-exit", type=float, default=0, help="stop once nothing came for this many seconds")
    tail.set_defaults(run=cmd_events_tail)
    stream.add_parser("types", help="the catalogue of event types and their fields").set_defaults(
        run=cmd_events_types)

    hooks = commands.add_parser("webhooks", help="URLs that receive the stream's events").add_subparsers(
        dest="action", required=True)
    hook_put = hooks.add_parser("put", help="create or replace a webhook subscription (prints its secret once)")
    hook_put.add_argument("id")
    hook_put.add_argument("--url", required=True)
    hook_put.add_argument("--types", required=True, help="event types, comma-separated (see events types)")
    hook_put.add_argument("--description", default="")
    hook_put.set_defaults(run=cmd_webhook_put)
    hooks.add_parser("list", help="subscriptions with their position and failures").set_defaults(
        run=cmd_webhook_list)
    for name, run, text in (("delete", cmd_webhook_delete, "stop a subscription"),
                            ("dead-letters", cmd_webhook_dead_letters, "deliveries given up, newest first"),
                            ("replay", cmd_webhook_replay, "deliver the dead-lettered events again")):
        action = hooks.add_parser(name, help=text)
        action.add_argument("id")
        action.set_defaults(run=run)

    letters = commands.add_parser("dead-letters", help="events that kept failing")
    letters.add_argument("action", choices=("list", "replay"))
    letters.set_defaults(run=cmd_dead_letters)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    client = LeadflowClient(_token(args))
    try:
        return args.run(client, args)
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`leadflow ... | head`): what it wanted is printed; say nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
