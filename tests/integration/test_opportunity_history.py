"""ImportOpportunities through the real service, broker and store: a sales history becomes
opportunities (one event each, projected by reporting), bad rows are reported by row and column,
importing again changes nothing, and an import the store stops says how far it got. (The public Maven
history is imported, against the files' own counts, by the reporting reconciliation test.)"""
import uuid

import eventlet
from grpc import StatusCode
from leadflow.common.v1 import common_pb2
from leadflow.opportunity.v1 import opportunity_pb2, opportunity_pb2_grpc
from nameko_grpc.errors import GrpcError

from services.cli.history import history_requests
from services.opportunity.dependencies import stable_id
from services.opportunity.history_files import BATCH_ROWS
from services.opportunity.models import AccountDocument, OpportunityDocument
from services.opportunity.service import OpportunityService
from tests.integration.conftest import start_isolated
from tests.support import violations_of, wait_until

HISTORY = b"""opportunity_id,sales_agent,product,account,deal_stage,engage_date,close_date,close_value\r
W1,Moses Frase,GTXPro,Cancity,Won,2016-10-20,2017-03-01,1054\r
W2,Ann Lee,MG Special,Newco,Won,2016-11-02,2017-01-15,55\r
L1,Moses Frase,GTX Pro,Cancity,Lost,2016-12-01,2017-02-01,0\r
E1,Ann Lee,MG Special,,Engaging,2017-05-01,,\r
P1,Moses Frase,GTX Pro,,Prospecting,,,\r
B1,Moses Frase,GTX Pro,Cancity,Won,2017-03-02,2017-03-01,900\r
B2,Moses Frase,GTX Pro,Cancity,Negotiating,2017-03-02,,\r
W1,Moses Frase,GTX Pro,Cancity,Won,2016-10-20,2017-03-01,1054\r
"""
ACCOUNTS = b"account,sector,employees,office_location\nCancity,retail,2448,United States\n"
TEAMS = b"sales_agent,manager,regional_office\nMoses Frase,Dustin Brinkmann,Central\n"
PRODUCTS = b"product,series,sales_price\nGTX Pro,GTX,4821\nMG Special,MG,55\n"
MAVEN_STAGES = {"Prospecting": "qualification", "Engaging": "discovery"}


def header(**fields) -> opportunity_pb2.OpportunityImportHeader:
    return opportunity_pb2.OpportunityImportHeader(**{"currency": "USD", "external_id_prefix": "old-crm:",
                                                      "stage_map": MAVEN_STAGES, **fields})


def history(admin, files=None, **fields):
    return admin.ImportOpportunities(history_requests(header(**fields), files or {
        "opportunities": HISTORY, "accounts": ACCOUNTS, "sales_teams": TEAMS, "products": PRODUCTS}))


def test_a_history_becomes_opportunities_with_one_event_each(run_service, infra, tokens, tap):
    service = start_isolated(run_service, infra, OpportunityService)
    admin = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["admin"])
    announced = tap("opportunity", "opportunity_imported")

    checked = history(admin, dry_run=True)
    assert checked.dry_run and checked.imported == 5 and OpportunityDocument.objects.count() == 0

    report = history(admin)
    events = {e["opportunity_id"]: e for e in announced.collect(5)}

    assert (report.rows, report.imported, report.unchanged, report.rejected) == (8, 5, 0, 3)
    assert dict(report.by_stage) == {"closed_won": 2, "closed_lost": 1, "discovery": 1, "qualification": 1}
    assert [(r.row, r.column) for r in report.rejections] == [(7, "close_date"), (8, "deal_stage"),
                                                              (9, "opportunity_id")]
    assert "repeats row 2" in report.rejections[2].reason
    assert "product 'GTXPro' read as the listed 'GTX Pro' (1 rows)" in report.notes
    assert report.accounts_created == 2  # Cancity from the accounts file, Newco by name

    won = OpportunityDocument.objects.get(external_id="old-crm:W1")
    assert (won.status, won.stage_id, won.amount, won.currency, won.product) == \
        ("won", "closed_won", "1054", "USD", "GTX Pro")
    assert (won.owner_id, won.team, won.manager_id, won.office) == \
        ("moses.frase", "dustin-brinkmann-team", "dustin.brinkmann", "Central")
    assert (won.engaged_at.date().isoformat(), won.closed_at.date().isoformat()) == ("2016-10-20", "2017-03-01")
    lost = OpportunityDocument.objects.get(external_id="old-crm:L1")
    assert (lost.status, lost.amount, lost.currency) == ("lost", "", "")
    cancity = AccountDocument.objects.get(name="Cancity")
    assert (cancity.industry, cancity.employees, cancity.country) == ("retail", 2448, "US")
    assert won.account_id == cancity.id == lost.account_id

    event = events[won.id]
    assert (event["status"], event["amount"], event["product"], event["office"], event["external_id"]) == \
        ("won", "1054", "GTX Pro", "Central", "old-crm:W1")
    assert (event["engaged_at"], event["closed_at"]) == ("2016-10-20T00:00:00.000000Z",
                                                         "2017-03-01T00:00:00.000000Z")

    again = history(admin)
    assert (again.imported, again.unchanged, again.accounts_created) == (0, 5, 0)
    assert OpportunityDocument.objects.count() == 5
    assert len(announced.collect(6, timeout=2)) == 5  # nothing new announced

    shown = admin.GetOpportunity(opportunity_pb2.GetOpportunityRequest(opportunity_id=won.id)).opportunity
    assert (shown.external_id, shown.account_name, shown.office, shown.probability) == \
        ("old-crm:W1", "Cancity", "Central", 100)


def test_a_bad_header_or_file_set_is_refused_before_anything_is_stored(run_service, infra, tokens):
    service = start_isolated(run_service, infra, OpportunityService)
    admin = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["admin"])
    rep = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["rep"])

    def error(caller, files=None, **fields):
        return caller.error("ImportOpportunities", history_requests(header(**fields), files or {
            "opportunities": HISTORY}))

    no_currency = error(admin, currency="")
    bad_stage = error(admin, stage_map={"Engaging": "engaged"})
    no_opportunities = error(admin, files={"accounts": ACCOUNTS})
    no_owner_column = error(admin, files={"opportunities": b"opportunity_id,deal_stage\r\nX,Won\r\n"})
    unknown_pipeline = error(admin, pipeline_id="partner")
    denied = error(rep)

    assert list(violations_of(no_currency.status)) == ["header.currency"]
    assert list(violations_of(bad_stage.status)) == ["header.stage_map[Engaging]"]
    assert list(violations_of(no_opportunities.status)) == ["file"]
    assert list(violations_of(no_owner_column.status)) == ["file[opportunities].mapping"]
    assert unknown_pipeline.code == StatusCode.NOT_FOUND
    assert denied.code == StatusCode.PERMISSION_DENIED
    assert OpportunityDocument.objects.count() == 0


def test_an_import_the_store_stops_says_what_is_kept_and_the_same_files_finish_it(run_service, infra, tokens):
    service = start_isolated(run_service, infra, OpportunityService)
    admin = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["admin"])
    deals = BATCH_ROWS + 100
    files = {"opportunities": "".join(
        [HISTORY.decode().splitlines(keepends=True)[0]] +
        [f"D{i},Moses Frase,GTX Pro,Cancity,Won,2016-10-20,2017-03-01,{100 + i}\r\n" for i in range(deals)]).encode()}
    import_id = f"history-{uuid.uuid4().hex}"
    # Another writer (a replica killed inside its transaction) holds a deal of the second batch.
    opportunities = OpportunityDocument._get_collection()
    other_writer = opportunities.database.client.start_session()
    other_writer.start_transaction()
    seen = []
    try:
        opportunities.insert_one({"_id": stable_id("opp", f"import:old-crm:D{BATCH_ROWS + 10}")}, session=other_writer)
        importing = eventlet.spawn(admin.error, "ImportOpportunities",
                                   history_requests(header(import_id=import_id), files))
        # Its progress, as the CLI's bar follows it, while the import runs and retries the second batch.
        while not importing.dead:
            seen.append(progress_or_none(admin, import_id))
            eventlet.sleep(0.05)
        stopped = importing.wait()
    finally:
        other_writer.abort_transaction()
        other_writer.end_session()

    assert stopped.code == StatusCode.ABORTED
    last_kept_row = BATCH_ROWS + 1  # the header is row 1
    assert f"imported up to row {last_kept_row} ({BATCH_ROWS:,} rows kept)" in stopped.message
    assert "send the same import again" in stopped.message
    assert OpportunityDocument.objects.count() == BATCH_ROWS
    running = [(p.rows_stored, p.stored_through_row, p.rows_expected) for p in seen if p is not None
               and (p.state, p.phase) == (common_pb2.IMPORT_STATE_RUNNING, common_pb2.IMPORT_PHASE_STORING)]
    assert (BATCH_ROWS, last_kept_row, deals) in running
    progress = import_progress(admin, import_id)
    assert (progress.state, progress.stored_through_row, progress.message) == \
        (common_pb2.IMPORT_STATE_STOPPED, last_kept_row, stopped.message)

    finished = history(admin, files, import_id=import_id)
    assert (finished.imported, finished.unchanged, finished.rejected) == (deals - BATCH_ROWS, BATCH_ROWS, 0)
    assert OpportunityDocument.objects.count() == deals
    progress = import_progress(admin, import_id)
    assert (progress.state, progress.rows_read, progress.rows_stored) == (common_pb2.IMPORT_STATE_DONE, deals, deals)


def import_progress(admin, import_id: str):
    return admin.GetImportProgress(opportunity_pb2.GetImportProgressRequest(import_id=import_id)).progress


def progress_or_none(admin, import_id: str):
    """None until the import's header has reached the service."""
    try:
        return import_progress(admin, import_id)
    except GrpcError:
        return None


def test_an_import_id_still_running_is_refused(run_service, infra, tokens):
    service = start_isolated(run_service, infra, OpportunityService)
    admin = service.grpc(opportunity_pb2_grpc.OpportunityServiceStub, tokens["admin"])
    import_id = f"history-{uuid.uuid4().hex}"
    opportunities = OpportunityDocument._get_collection()
    other_writer = opportunities.database.client.start_session()
    other_writer.start_transaction()
    try:
        # The first import waits on a held deal; the same id sent again meanwhile is refused.
        opportunities.insert_one({"_id": stable_id("opp", "import:old-crm:W2")}, session=other_writer)
        first = eventlet.spawn(admin.error, "ImportOpportunities", history_requests(header(import_id=import_id), {
            "opportunities": HISTORY}))
        wait_until(lambda: first.dead or getattr(progress_or_none(admin, import_id), "phase", None) ==
                   common_pb2.IMPORT_PHASE_STORING)
        again = admin.error("ImportOpportunities", history_requests(header(import_id=import_id), {
            "opportunities": HISTORY}))
        assert first.wait().code == StatusCode.ABORTED
    finally:
        other_writer.abort_transaction()
        other_writer.end_session()
    assert again.code == StatusCode.FAILED_PRECONDITION
    assert f"import {import_id} is still running" in again.message
    assert history(admin, import_id=import_id).imported == 5  # once it stopped, its id finishes it
