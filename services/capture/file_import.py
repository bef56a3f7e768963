"""ImportLeadFile, the orchestration: receive the streamed file, pick the column mapping, turn rows
into leads, and store them in batches — a bad row is reported and never stops the good ones."""
import tempfile
import uuid
from dataclasses import dataclass, field

from services.capture import domain, importing
from services.common import metrics, tabular
from services.common.compute import in_slices
from services.common.errors import InvalidArgument, Validator
from services.common.events import utcnow
from services.common.import_progress import ImportPhase
from services.common.streams import receive_chunks

BATCH_ROWS = 500
MAX_REPORTED_REJECTIONS = 1000
SPOOL_IN_MEMORY = 8 * 1024 * 1024


@dataclass
class RejectedRow:
    row: int
    column: str
    reason: str


@dataclass
class ImportReport:
    rows: int = 0
    accepted: int = 0
    merged: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejected_rows: list = field(default_factory=list)
    mapping: dict = field(default_factory=dict)
    dry_run: bool = False
    created_by_source: dict = field(default_factory=dict)

    def reject(self, row: int, column: str, reason: str) -> None:
        self.rejected += 1
        if len(self.rejected_rows) < MAX_REPORTED_REJECTIONS:
            self.rejected_rows.append(RejectedRow(row, column, reason))


def _stored(report: ImportReport) -> int:
    return report.accepted + report.merged + report.unchanged


def header_settings(header) -> importing.ImportDefaults:
    """The header's settings; InvalidArgument naming each bad field, before any byte of the file is read."""
    check = Validator()
    source = domain.canonical_label(header.attribution.source)
    if check.required(source, "header.attribution.source"):
        check.max_length(source, domain.MAX_SOURCE, "header.attribution.source")
    country = domain.country_code(header.default_country) if header.default_country else ""
    check.check(country is not None, "header.default_country", "is not an ISO 3166-1 country code or name")
    check.max_length(header.external_id_prefix, 50, "header.external_id_prefix")
    check.check(len(header.tags) < domain.MAX_TAGS, "header.tags", f"at most {domain.MAX_TAGS - 1} tags")
    check.raise_if_invalid()
    return importing.ImportDefaults(
        source=source, medium=header.attribution.medium, campaign=header.attribution.campaign,
        tags=(*header.tags, domain.CHANNEL_TAGS["import"]), default_country=country or "",
        external_id_prefix=header.external_id_prefix)


class LeadFileImport:
    def __init__(self, leads, forms, captured_by: str, max_bytes: int, tracker):
        self.leads, self.forms = leads, forms
        self.captured_by = captured_by
        self.max_bytes = max_bytes
        self.tracker = tracker

    def run(self, header, chunks, defaults: importing.ImportDefaults) -> ImportReport:
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            receive_chunks(chunks, spool, self.max_bytes,
                           received_so_far=lambda size: self.tracker.update(bytes_received=size))
            self.tracker.update(phase=ImportPhase.READING)
            spool.seek(0)
            head = spool.read(8)
            spool.seek(0)
            fmt = tabular.detect_format(header.filename, head)
            headers, rows = tabular.read_rows(spool, fmt)
            with rows:
                mapping = self._mapping(header, defaults.source, headers)
                report = ImportReport(mapping=mapping, dry_run=header.dry_run)
                self.tracker.update(phase=ImportPhase.STORING, rows_expected=rows.expected_rows)
                self._import(rows, mapping, defaults, report, header.dry_run)
        if header.save_mapping and not header.dry_run:
            self.forms.save_mapping(defaults.source, mapping)
        for outcome, count in (("accepted", report.accepted), ("merged", report.merged),
                               ("unchanged", report.unchanged), ("rejected", report.rejected)):
            metrics.IMPORT_ROWS.labels(outcome).inc(count)
        return report

    def _mapping(self, header, source: str, headers: list) -> dict:
        """The caller's mapping; else the one saved for this source (for the columns this file has);
        else a guess from the headers."""
        if header.mapping:
            return importing.validate_mapping(dict(header.mapping), headers, "header.mapping")
        saved = self.forms.saved_mapping(source)
        if saved:
            usable = {column: target for column, target in saved.items() if column in headers}
            if usable:
                guessed = importing.guess_mapping(headers)
                merged = {**{c: t for c, t in guessed.items() if c not in usable and t not in usable.values()},
                          **usable}
                try:
                    return importing.validate_mapping(merged, headers, "header.mapping")
                except InvalidArgument:
                    return importing.validate_mapping(usable, headers, "header.mapping")
        return importing.validate_mapping(importing.guess_mapping(headers), headers, "header.mapping")

    def _import(self, rows, mapping: dict, defaults, report: ImportReport, dry_run: bool) -> None:
        batch, row_number = [], 0
        for row_number, row in in_slices(rows):
            report.rows += 1
            self.tracker.update(rows_read=report.rows, rows_rejected=report.rejected)
            now = utcnow()
            try:
                raw = importing.row_to_lead_input(row, mapping, defaults)
                lead = domain.normalise_lead(raw, str(uuid.uuid4()), now, default_region=defaults.default_country)
            except InvalidArgument as exc:
                first = exc.violations[0]
                column = importing.column_for_field(mapping, first.field) or ""
                reason = "; ".join(f"{v.field}: {v.description}" for v in exc.violations)
                report.reject(row_number, column, reason)
                continue
            batch.append(lead)
            if len(batch) >= BATCH_ROWS:
                self._store(batch, report, dry_run)
                batch = []
                self._stored_through(row_number, report)
        if batch:
            self._store(batch, report, dry_run)
        self._stored_through(row_number, report)

    def _stored_through(self, row_number: int, report: ImportReport) -> None:
        """The file is stored up to ``row_number`` (as a spreadsheet numbers it): the progress, and what a
        caller whose import the store stops is told, come from here."""
        self.tracker.update(at_once=True, rows_read=report.rows, rows_stored=_stored(report),
                            rows_rejected=report.rejected, stored_through_row=row_number)

    def _store(self, batch: list, report: ImportReport, dry_run: bool) -> None:
        if dry_run:
            report.accepted += len(batch)
            return
        for outcome in self.leads.import_batch(batch, self.captured_by):
            if outcome.created:
                report.accepted += 1
                source = outcome.lead.source
                report.created_by_source[source] = report.created_by_source.get(source, 0) + 1
            elif outcome.unchanged:
                report.unchanged += 1
            else:
                report.merged += 1
