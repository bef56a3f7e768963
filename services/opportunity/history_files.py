"""ImportOpportunities, the orchestration: receive the streamed files, read the reference tables,
then turn the opportunity rows into opportunities and store them in batches. A bad row is
reported and never stops the good ones; the same rows imported again change nothing."""
import tempfile
from dataclasses import dataclass, field

from services.common import metrics, tabular
from services.common.compute import in_slices
from services.common.errors import FieldViolation, InvalidArgument, Validator
from services.common.events import utcnow
from services.common.import_progress import ImportPhase
from services.opportunity import history_import as history
from services.common.money import checked_currency
from services.opportunity.domain import PRINCIPAL_ID
from services.opportunity.pipeline import compile_pipeline

BATCH_ROWS = 500
MAX_REPORTED_REJECTIONS = 1000
SPOOL_IN_MEMORY = 8 * 1024 * 1024


@dataclass
class Rejection:
    table: str
    row: int
    column: str
    reason: str


@dataclass
class HistoryReport:
    rows: int = 0
    imported: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejections: list = field(default_factory=list)
    by_stage: dict = field(default_factory=dict)
    accounts_created: int = 0
    notes: list = field(default_factory=list)
    mappings: dict = field(default_factory=dict)
    dry_run: bool = False

    def reject(self, table: str, row: int, column: str, reason: str) -> None:
        self.rejected += 1
        if len(self.rejections) < MAX_REPORTED_REJECTIONS:
            self.rejections.append(Rejection(table, row, column, reason))


@dataclass
class ReceivedFile:
    table: str
    filename: str
    mapping: dict
    spool: object
    size: int = 0


@dataclass(frozen=True)
class HistorySettings:
    pipeline_id: str
    currency: str
    prefix: str
    stage_words: dict
    owner_ids: dict
    default_team: str
    dry_run: bool


def settings_of(header) -> HistorySettings:
    check = Validator()
    currency = checked_currency(check, header.currency, "header.currency")
    check.max_length(header.external_id_prefix, 50, "header.external_id_prefix")
    default_team = header.default_team.strip() or "imported"
    check.check(bool(PRINCIPAL_ID.match(default_team)), "header.default_team",
                "must be a team id: letters, digits, '.', '_' or '-', at most 64")
    check.raise_if_invalid()
    return HistorySettings(pipeline_id=header.pipeline_id.strip() or "new-business", currency=currency,
                           prefix=header.external_id_prefix, stage_words=dict(header.stage_map),
                           owner_ids=history.owner_ids_of(dict(header.owner_ids)), default_team=default_team,
                           dry_run=header.dry_run)


def receive_files(messages, tables: dict, max_bytes: int, part_field: str = "part", received_so_far=None) -> dict:
    """{table: ReceivedFile} from ``file`` messages each followed by its ``chunk`` messages.
    ``tables`` maps the proto's table numbers to names; all files together stay within max_bytes.
    ``received_so_far(size)`` hears of each chunk."""
    files, current, total = {}, None, 0
    for index, message in enumerate(messages, start=1):
        kind = message.WhichOneof(part_field)
        if kind == "file":
            table = tables.get(message.file.table)
            where = f"messages[{index}].file"
            if table is None:
                raise InvalidArgument([FieldViolation(f"{where}.table", "must say which table the file holds")])
            if table in files:
                raise InvalidArgument([FieldViolation(f"{where}.table", f"a second {table} file")])
            current = files[table] = ReceivedFile(table, message.file.filename, dict(message.file.mapping),
                                                  tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY))
        elif kind == "chunk":
            if current is None:
                raise InvalidArgument([FieldViolation(f"messages[{index}]", "a file message must come first")])
            total += len(message.chunk)
            if total > max_bytes:
                raise InvalidArgument([FieldViolation("chunk", f"the files are larger than {max_bytes} bytes")])
            current.spool.write(message.chunk)
            current.size += len(message.chunk)
            if received_so_far is not None:
                received_so_far(total)
        else:
            raise InvalidArgument([FieldViolation(f"messages[{index}]", "only the first message is a header")])
    if history.OPPORTUNITIES not in files:
        raise InvalidArgument([FieldViolation("file", "the opportunities file is required")])
    for received in files.values():
        if received.size == 0:
            raise InvalidArgument([FieldViolation(f"file[{received.table}]", "is empty")])
    return files


class HistoryImport:
    def __init__(self, repository, imported_by: str, tracker):
        self.repository = repository
        self.imported_by = imported_by
        self.tracker = tracker

    def run(self, settings: HistorySettings, files: dict) -> HistoryReport:
        stored = self.repository.pipeline_version(settings.pipeline_id)  # NotFound for an unknown pipeline
        pipeline = compile_pipeline(stored.definition)
        stages = history.stage_map(pipeline, settings.stage_words)
        report = HistoryReport(dry_run=settings.dry_run)
        self.tracker.update(phase=ImportPhase.READING)
        try:
            reference = history.Reference()
            for table, target in ((history.ACCOUNTS, reference.accounts), (history.SALES_TEAMS, reference.teams),
                                  (history.PRODUCTS, reference.products)):
                if table in files:
                    self._read_reference(files[table], target, report)
            quirks = history.Quirks()
            self._import(files[history.OPPORTUNITIES], settings, stages, reference, quirks, stored.version, report)
            report.notes = quirks.notes()
        finally:
            for received in files.values():
                received.spool.close()
        metrics.OPPORTUNITIES_IMPORTED.inc(report.imported)
        return report

    def _rows(self, received: ReceivedFile, report: HistoryReport):
        """(mapping, rows) of one file, its mapping recorded in the report."""
        received.spool.seek(0)
        head = received.spool.read(8)
        fmt = tabular.detect_format(received.filename, head)
        headers, rows = tabular.read_rows(received.spool, fmt)
        try:
            mapping = history.column_mapping(received.table, headers, received.mapping, f"file[{received.table}]")
        except BaseException:
            rows.close()
            raise
        report.mappings[received.table] = ", ".join(f"{h} -> {t}" for h, t in mapping.items())
        return mapping, rows

    def _read_reference(self, received: ReceivedFile, target: dict, report: HistoryReport) -> None:
        read = history.REFERENCE_READERS[received.table]
        mapping, rows = self._rows(received, report)
        column_of = {t: h for h, t in mapping.items()}
        with rows:
            for number, row in rows:
                try:
                    item = read(history.fields_of(row, mapping))
                except history.RowRejected as rejected:
                    report.reject(received.table, number, column_of.get(rejected.field_name, ""), rejected.reason)
                    continue
                target.setdefault(item.key, item)  # the first row of a name wins, as a reader would assume

    def _import(self, received, settings, stages, reference, quirks, pipeline_version, report) -> None:
        mapping, rows = self._rows(received, report)
        column_of = {t: h for h, t in mapping.items()}
        first_row_of, batch, number = {}, [], 0
        today = utcnow().date()
        self.tracker.update(phase=ImportPhase.STORING, rows_expected=rows.expected_rows)
        with rows:
            for number, row in in_slices(rows):
                report.rows += 1
                self.tracker.update(rows_read=report.rows, rows_rejected=report.rejected)
                try:
                    deal = history.opportunity_of(history.fields_of(row, mapping), stages, reference, quirks,
                                                  settings.owner_ids, settings.default_team, today)
                except history.RowRejected as rejected:
                    report.reject(history.OPPORTUNITIES, number, column_of.get(rejected.field_name, ""),
                                  rejected.reason)
                    continue
                earlier = first_row_of.setdefault(deal.external_id, number)
                if earlier != number:
                    report.reject(history.OPPORTUNITIES, number, column_of["external_id"],
                                  f"{deal.external_id!r} repeats row {earlier}")
                    continue
                report.by_stage[deal.stage_id] = report.by_stage.get(deal.stage_id, 0) + 1
                batch.append(deal)
                if len(batch) >= BATCH_ROWS:
                    self._store(batch, settings, stages.pipeline, pipeline_version, report)
                    batch = []
                    self._stored_through(number, report)
        if batch:
            self._store(batch, settings, stages.pipeline, pipeline_version, report)
        self._stored_through(number, report)

    def _stored_through(self, row_number: int, report: HistoryReport) -> None:
        """The opportunities file is stored up to ``row_number``: the progress, and what a caller whose
        import the store stops is told, come from here."""
        self.tracker.update(at_once=True, rows_read=report.rows, rows_stored=report.imported + report.unchanged,
                            rows_rejected=report.rejected, stored_through_row=row_number)

    def _store(self, batch, settings, pipeline, pipeline_version, report) -> None:
        if settings.dry_run:
            report.imported += len(batch)
            return
        imported, unchanged, accounts = self.repository.import_history(
            batch, pipeline, pipeline_version, settings.currency, settings.prefix, self.imported_by, utcnow())
        report.imported += imported
        report.unchanged += unchanged
        report.accounts_created += accounts
