"""Spreadsheet files read as rows: CSV (UTF-8, UTF-16 or GB18030; comma, semicolon or tab) and XLSX, streamed
so a large file never sits in memory, with row numbers as a spreadsheet shows them. Every file import
(leads in capture, historical opportunities in opportunity) reads its files here."""
import codecs
import contextlib
import csv
import io
import re
import warnings
from datetime import date, datetime, time, timedelta

from openpyxl import load_workbook
from openpyxl.utils import get_column_letter

from services.common.compute import off_the_hub
from services.common.errors import FieldViolation, InvalidArgument

__all__ = ["MAX_COLUMNS", "detect_format", "read_rows", "RowStream", "file_error"]

MAX_COLUMNS = 500


def file_error(description: str) -> InvalidArgument:
    return InvalidArgument([FieldViolation("file", description)])


def detect_format(filename: str, head: bytes) -> str:
    """"xlsx" or "csv", from the first bytes (a workbook is a zip); the name only sharpens error messages."""
    name = (filename or "").lower()
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise file_error("is an old Excel .xls workbook or a password-protected one; save it as .xlsx or CSV")
    if head.startswith(b"PK\x03\x04"):
        if name.endswith((".ods", ".numbers")):
            raise file_error("OpenDocument and Numbers spreadsheets are not supported; save it as .xlsx or CSV")
        return "xlsx"
    if name.endswith((".xlsx", ".xlsm")):
        raise file_error("is named like an Excel workbook but is not one; save it again as .xlsx or CSV")
    return "csv"


class RowStream:
    """The data rows of an import file, read lazily: iterate for ``(row_number, {header: text})``.

    Cells under no header (an unnamed column, or more cells than the header row has) cannot be mapped;
    they are counted here so the import report can say so instead of losing them silently."""

    MAX_REPORTED_ROWS = 100

    def __init__(self, records, headers: list, names: list, expected_rows: int = 0):
        self.headers = headers
        # Data rows the file seems to hold, for a progress bar; 0 when it cannot tell.
        self.expected_rows = expected_rows
        self.unnamed_columns = [get_column_letter(i + 1) for i, name in enumerate(names) if not name]
        self.ignored_cells = 0
        self.ignored_cell_rows = []  # the first MAX_REPORTED_ROWS row numbers that had some
        self._records = records
        self._rows = self._generate(records, names)

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._rows)

    def close(self):
        self._rows.close()
        self._records.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _generate(self, records, names):
        width = len(names)
        named = [(i, name) for i, name in enumerate(names) if name]
        simple = len(named) == width
        headers = self.headers
        for number, cells in records:
            if simple and len(cells) >= width:
                row = dict(zip(headers, cells[:width], strict=True))
                stray = cells[width:]
            else:
                row = {name: cells[i] if i < len(cells) else "" for i, name in named}
                stray = [cell for i, cell in enumerate(cells) if i >= width or not names[i]]
            if stray and "".join(stray).strip():
                self.ignored_cells += sum(1 for cell in stray if cell.strip())
                if len(self.ignored_cell_rows) < self.MAX_REPORTED_ROWS:
                    self.ignored_cell_rows.append(number)
            if "".join(row.values()).strip():
                yield number, row


def read_rows(fileobj, fmt: str, encoding: str | None = None):
    """``(headers, RowStream)`` of a binary, seekable file; the rows are read as they are iterated, so the
    file must stay open until then. Row numbers are what a spreadsheet shows (the header row is 1 when
    it is the first row); fully empty rows are skipped but counted. ``encoding`` overrides CSV detection."""
    size = {}  # rows (lines of a CSV file) the file records, known once its first row is read
    if fmt == "csv":
        records = _csv_records(fileobj, encoding, size)
    elif fmt == "xlsx":
        records = _xlsx_records(fileobj, size)
    else:
        raise ValueError(f"unknown file format {fmt!r}")
    try:
        headers, names = _header(records)
    except BaseException:
        records.close()
        raise
    return headers, RowStream(records, headers, names, expected_rows=max(size.get("rows", 0) - 1, 0))


def _header(records):
    for _number, cells in records:
        if "".join(cells).strip():
            break
    else:
        raise file_error("has no header row: it is empty")
    names = [" ".join(cell.replace("\ufeff", "").split()) for cell in cells]
    while names and not names[-1]:
        names.pop()  # trailing unnamed columns come from a trailing delimiter (e.g. "a,b,c,")
    if len(names) > MAX_COLUMNS:
        raise file_error(f"has {len(names)} columns; at most {MAX_COLUMNS} can be imported")
    # Duplicate headers become "Email (2)": refusing the file would make the user edit it for no gain.
    seen = set()
    for i, name in enumerate(names):
        if not name:
            continue
        unique, n = name, 2
        while unique.casefold() in seen:
            unique, n = f"{name} ({n})", n + 1
        seen.add(unique.casefold())
        names[i] = unique
    return [name for name in names if name], names


def _csv_records(fileobj, encoding, size: dict):
    fileobj.seek(0)
    head = fileobj.read(1 << 16)
    # Reading the whole file to know its encoding takes a while for a large one: not on the event loop.
    encoding = encoding or off_the_hub(_csv_encoding, fileobj, head)
    size["rows"] = off_the_hub(_count_lines, fileobj)
    if b"\x00" in head and not encoding.startswith("utf-16"):
        raise file_error("is not a text (CSV) file")
    sample = codecs.getincrementaldecoder(encoding)(errors="replace").decode(head)
    delimiter, hint_line = _csv_dialect(sample)
    return _csv_rows(fileobj, encoding, delimiter, hint_line)


def _csv_encoding(fileobj, head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"  # Excel's "Unicode text" export
    # The whole file is checked (in chunks, so memory stays bounded): a GB18030 export from a Chinese Excel
    # can be plain ASCII for its first thousand rows. Checking here also finds a file in neither encoding
    # before any row of it is imported.
    if _decodes(fileobj, "utf-8") is None:
        return "utf-8-sig"
    bad_line = _decodes(fileobj, "gb18030")
    if bad_line is None:
        return "gb18030"
    raise file_error(f"line {bad_line}: is neither UTF-8 nor GB18030 text; save the file as CSV UTF-8 "
                      "or say which encoding it uses")


def _count_lines(fileobj) -> int:
    """Lines of a text file: its rows, unless a quoted cell spans lines."""
    fileobj.seek(0)
    lines, last = 0, b"\n"
    while chunk := fileobj.read(1 << 20):
        lines += chunk.count(b"\n")
        last = chunk[-1:]
    return lines + (last != b"\n")


def _decodes(fileobj, encoding: str):
    """None when the whole file decodes, else the (physical) line where it stops."""
    fileobj.seek(0)
    decoder = codecs.getincrementaldecoder(encoding)()
    lines = 1
    while True:
        chunk = fileobj.read(1 << 20)
        try:
            decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            return lines + chunk[:max(exc.start, 0)].count(b"\n")
        if not chunk:
            return None
        lines += chunk.count(b"\n")


_DELIMITERS = (",", ";", "\t")
_SEP_HINT = re.compile(r"^sep=(.)\r?\n")


def _csv_dialect(sample: str):
    """The delimiter, and whether the first line is Excel's "sep=;" hint (which Excel hides)."""
    sample = sample.lstrip("\ufeff")
    hint = _SEP_HINT.match(sample)
    if hint:
        return hint.group(1), True
    # The last line of the sample may be cut short, so it is not judged.
    lines = sample.splitlines(keepends=True)
    sample = "".join(lines[:-1]) if len(lines) > 1 else sample
    best, best_score = ",", None
    for delimiter in _DELIMITERS:
        try:
            records = [r for r in csv.reader(io.StringIO(sample), delimiter=delimiter) if any(r)][:20]
        except csv.Error:
            continue
        if not records:
            continue
        widths = [len(_without_trailing_empties(r)) for r in records]
        # A real delimiter splits the header into several columns and the rows into as many.
        score = (widths[0] > 1, sum(1 for w in widths[1:] if w == widths[0]), widths[0])
        if best_score is None or score > best_score:
            best, best_score = delimiter, score
    return best, False


def _without_trailing_empties(cells):
    end = len(cells)
    while end and not cells[end - 1].strip():
        end -= 1
    return cells[:end]


def _csv_rows(fileobj, encoding, delimiter, skip_hint_line):
    fileobj.seek(0)
    text = io.TextIOWrapper(fileobj, encoding=encoding, newline="")
    number = 0
    try:
        if skip_hint_line:
            text.readline()
        # One CSV record is one spreadsheet row even when a quoted cell spans lines, and a blank line is an
        # empty row, as Excel shows them.
        for cells in csv.reader(text, delimiter=delimiter):
            number += 1
            yield number, cells
    except UnicodeDecodeError:
        # Only a file detection did not decode whole gets here (it has a BOM, or the caller named the
        # encoding); the wrapper decodes ahead of the rows, so no row number would be right.
        raise file_error(f"is not valid {encoding.removesuffix('-sig')} text") from None
    except csv.Error as exc:
        raise file_error(f"row {number + 1}: cannot be read as CSV ({exc})") from None
    finally:
        # The wrapper would close the caller's file when it goes away; the caller may have closed it already.
        with contextlib.suppress(ValueError):
            text.detach()


def _xlsx_records(fileobj, size: dict):
    fileobj.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about styles and extensions it does not read
            # Opening reads every shared string (1.3 s for 100,000 rows): not on the event loop.
            workbook = off_the_hub(load_workbook, fileobj, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises anything from BadZipFile to KeyError on a broken file
        raise file_error(f"is not a readable .xlsx workbook ({type(exc).__name__})") from None
    number = 0
    try:
        if not workbook.worksheets:
            raise file_error("has no worksheet")
        sheet = workbook.worksheets[0]
        size["rows"] = sheet.max_row or 0  # as its writer recorded it: good enough for a progress bar
        # Some writers record a wrong sheet size; trusting it would cut rows off.
        sheet.reset_dimensions()
        try:
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                yield number, [_render(value) for value in values]
        except Exception as exc:
            raise file_error(f"row {number + 1}: cannot be read ({type(exc).__name__})") from None
    finally:
        workbook.close()


def _render(value) -> str:
    """A cell as the user sees it in Excel's General format: 1.0 is "1", a date is ISO 8601."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return format(value, ".15g")  # Excel shows 15 significant digits
    if isinstance(value, datetime):
        if value.time() == time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat(timespec="seconds")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return str(value)
