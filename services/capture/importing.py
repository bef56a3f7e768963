"""Lead file import, the pure part: read CSV/XLSX rows as a stream, guess and check the column mapping,
and turn one row into a LeadInput (normalise_lead then validates it like any other channel's capture)."""
import codecs
import contextlib
import csv
import io
import re
import unicodedata
import warnings
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from openpyxl import load_workbook
from openpyxl.utils import get_column_letter

from services.capture.domain import MAX_CUSTOM_FIELDS, MAX_CUSTOM_KEY, LeadInput, custom_key_from, is_custom_key
from services.common.errors import FieldViolation, InvalidArgument, Validator

__all__ = [
    "TARGETS", "TEXT_TARGETS", "IGNORE", "CUSTOM_PREFIX", "MAX_COLUMNS", "EMPTY_VALUES", "guess_mapping",
    "validate_mapping", "column_for_field", "detect_format", "read_rows", "RowStream", "ImportDefaults",
    "row_to_lead_input", "clean_value", "parse_company_size", "parse_consent", "split_tags", "split_full_name",
]

# --- mapping targets -----------------------------------------------------------------------------------

TEXT_TARGETS = (
    "email", "phone", "first_name", "last_name", "company", "title", "country", "region", "city", "address",
    "website", "industry", "source", "medium", "campaign", "external_id", "consent_text",
)
IGNORE = "ignore"
CUSTOM_PREFIX = "custom:"
TARGETS = TEXT_TARGETS + ("company_size", "marketing_consent", "tags", "full_name", IGNORE)
# Tags from several columns add up and ignored columns are not read; every other target takes one column,
# because two columns feeding one field would make one of them win silently.
_MULTI_COLUMN_TARGETS = frozenset({"tags", IGNORE})

MAX_COLUMNS = 500

# Header synonyms, compared after _header_key (case, spacing, punctuation and "(...)" remarks removed).
# Within a target, earlier synonyms are stronger: when two columns guess the same target, the stronger
# one (then the leftmost) gets it and the other stays a custom field.
_SYNONYMS = {
    "email": ("email", "emailaddress", "mail", "emailid", "workemail", "businessemail", "contactemail",
              "primaryemail", "personalemail", "邮箱", "电子邮箱", "邮箱地址", "电子邮件", "电子邮件地址", "电邮",
              "邮件"),
    "phone": ("phone", "phonenumber", "mobile", "mobilephone", "mobilenumber", "mobileno", "phoneno",
              "telephone", "telephonenumber", "tel", "cell", "cellphone", "cellnumber", "contactnumber",
              "contactphone", "workphone", "businessphone", "手机", "手机号", "手机号码", "移动电话", "电话",
              "电话号码", "联系电话", "联系方式", "座机"),
    "first_name": ("firstname", "givenname", "forename", "fname", "名", "名字"),
    "last_name": ("lastname", "surname", "familyname", "lname", "姓", "姓氏"),
    "full_name": ("fullname", "name", "contactname", "leadname", "contact", "姓名", "全名", "联系人",
                  "联系人姓名", "客户姓名"),
    "company": ("company", "companyname", "organization", "organisation", "organizationname",
                "organisationname", "accountname", "account", "employer", "businessname", "org", "公司",
                "公司名称", "公司名", "企业", "企业名称", "单位", "单位名称", "工作单位", "客户名称", "机构"),
    "title": ("jobtitle", "title", "position", "role", "jobrole", "designation", "职位", "职务", "岗位", "头衔",
              "职称"),
    "country": ("country", "countryname", "countrycode", "countryregion", "nation", "国家", "国家地区", "国别"),
    "region": ("region", "state", "province", "stateprovince", "stateregion", "省", "省份", "州", "省州", "地区"),
    "city": ("city", "town", "locality", "城市", "市", "所在城市"),
    "address": ("address", "streetaddress", "street", "addressline1", "address1", "mailingaddress", "地址",
                "详细地址", "通讯地址", "公司地址", "街道地址"),
    "website": ("website", "websiteurl", "companywebsite", "web", "url", "homepage", "site", "网站", "网址",
                "官网", "公司网站", "主页"),
    "industry": ("industry", "sector", "vertical", "行业", "所属行业", "行业类别"),
    "company_size": ("companysize", "numberofemployees", "noofemployees", "employees", "employeecount",
                     "headcount", "size", "公司规模", "企业规模", "员工人数", "员工数", "人数", "规模"),
    "source": ("source", "leadsource", "utmsource", "来源", "线索来源", "客户来源", "来源渠道", "获客来源"),
    # "Lead Origin" (landing page, add form, API, import) says how the lead came in: that is a medium.
    "medium": ("medium", "utmmedium", "channel", "leadchannel", "leadorigin", "媒介", "渠道", "推广渠道"),
    "campaign": ("campaign", "campaignname", "utmcampaign", "活动", "活动名称", "市场活动", "营销活动", "推广活动"),
    "external_id": ("externalid", "prospectid", "leadid", "crmid", "recordid", "contactid", "id", "外部id",
                    "线索id", "线索编号", "客户id", "客户编号", "记录id", "编号", "leadnumber"),
    "marketing_consent": ("marketingconsent", "consent", "optin", "emailoptin", "marketingoptin", "gdprconsent",
                          "acceptsmarketing", "subscribed", "营销同意", "同意营销", "是否同意营销", "订阅"),
    "consent_text": ("consenttext", "consentwording", "同意文本"),
    "tags": ("tags", "tag", "labels", "label", "标签", "客户标签", "线索标签"),
}
_SYNONYM_INDEX = {key: (target, rank) for target, keys in _SYNONYMS.items() for rank, key in enumerate(keys)}
_REMARK = re.compile(r"\([^)]*\)|\[[^\]]*\]|【[^】]*】")
_NOT_WORD = re.compile(r"[\W_]+")


def _header_key(header: str) -> str:
    # NFKC folds full-width letters and brackets from Chinese spreadsheets to their ASCII forms.
    text = unicodedata.normalize("NFKC", header).casefold()
    key = _NOT_WORD.sub("", _REMARK.sub("", text))
    return key or _NOT_WORD.sub("", text)


def guess_mapping(headers) -> dict:
    """A first mapping {header: target} to show the user: known headers (English and Chinese) to lead fields,
    other named columns to ``custom:<slug>`` (while custom fields last), empty headers to ``ignore``."""
    guesses = {}
    for position, header in enumerate(headers):
        found = _SYNONYM_INDEX.get(_header_key(header)) if header.strip() else None
        if found:
            guesses[header] = (found[0], found[1], position)
    winners = {}
    for header, (target, rank, position) in guesses.items():
        if target in _MULTI_COLUMN_TARGETS:
            continue
        if target not in winners or (rank, position) < guesses[winners[target]][1:]:
            winners[target] = header

    mapping, keys = {}, set()
    for position, header in enumerate(headers, start=1):
        if header in mapping:
            continue
        guess = guesses.get(header)
        if guess and (guess[0] in _MULTI_COLUMN_TARGETS or winners.get(guess[0]) == header):
            mapping[header] = guess[0]
        elif not header.strip() or len(keys) >= MAX_CUSTOM_FIELDS:
            mapping[header] = IGNORE
        else:
            base = key = custom_key_from(header, f"column_{position}")
            suffix = 2
            while key.casefold() in keys:
                key = f"{base[:MAX_CUSTOM_KEY - len(str(suffix)) - 1]}_{suffix}"
                suffix += 1
            keys.add(key.casefold())
            mapping[header] = CUSTOM_PREFIX + key
    return mapping


def validate_mapping(mapping: dict, headers, field: str = "mapping") -> dict:
    """Check a user's mapping against the file's headers; every problem is named ``<field>[<column>]``.

    Returns the mapping with its targets stripped of surrounding spaces."""
    check = Validator()
    known = set(headers)
    cleaned, taken, custom_count = {}, {}, 0
    for header, target in mapping.items():
        name = f"{field}[{header}]"
        target = target.strip() if isinstance(target, str) else target
        if not check.check(header in known, name, "the file has no column with this header"):
            continue
        if not isinstance(target, str) or not (target in TARGETS or target.startswith(CUSTOM_PREFIX)):
            check.check(False, name, f"unknown target {target!r}; use one of {', '.join(TARGETS)} "
                                     f"or {CUSTOM_PREFIX}<key>")
            continue
        if target.startswith(CUSTOM_PREFIX):
            key = target[len(CUSTOM_PREFIX):]
            if not check.check(is_custom_key(key), name,
                               "custom key must start with a letter and use letters, digits, '_', '.', '-' "
                               f"(at most {MAX_CUSTOM_KEY})"):
                continue
            custom_count += 1
            check.check(custom_count <= MAX_CUSTOM_FIELDS, name,
                        f"at most {MAX_CUSTOM_FIELDS} columns can become custom fields; ignore the others")
        # The same custom key twice would overwrite one column with the other, so it counts as one target.
        if target not in _MULTI_COLUMN_TARGETS:
            check.check(target not in taken, name,
                        f"column {taken.get(target)!r} is already mapped to {target}; map one column to it")
            taken.setdefault(target, header)
        cleaned[header] = target
    check.raise_if_invalid()
    return cleaned


def column_for_field(mapping: dict, violation_field: str):
    """The column a violation comes from, for the import report: ``row.<header>`` from row_to_lead_input,
    ``<prefix>.<field>`` from normalise_lead, ``mapping[<header>]``. None when no column feeds the field
    (e.g. a source that came from the import's defaults)."""
    if violation_field.startswith("row."):
        return violation_field[4:]
    if violation_field.startswith("mapping[") and violation_field.endswith("]"):
        return violation_field[8:-1]
    name = violation_field.split(".", 1)[1] if "." in violation_field else violation_field
    wanted = ("source",) if name == "attribution.source" else (name,)
    if name.startswith("custom_fields[") and name.endswith("]"):
        wanted = (CUSTOM_PREFIX + name[len("custom_fields["):-1],)
    elif name in ("first_name", "last_name"):
        wanted = (name, "full_name")
    for target in wanted:
        for header, mapped in mapping.items():
            if mapped == target:
                return header
    return None


# --- reading files -------------------------------------------------------------------------------------

def _file_error(description: str) -> InvalidArgument:
    return InvalidArgument([FieldViolation("file", description)])


def detect_format(filename: str, head: bytes) -> str:
    """"xlsx" or "csv", from the first bytes (a workbook is a zip); the name only sharpens error messages."""
    name = (filename or "").lower()
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise _file_error("is an old Excel .xls workbook or a password-protected one; save it as .xlsx or CSV")
    if head.startswith(b"PK\x03\x04"):
        if name.endswith((".ods", ".numbers")):
            raise _file_error("OpenDocument and Numbers spreadsheets are not supported; save it as .xlsx or CSV")
        return "xlsx"
    if name.endswith((".xlsx", ".xlsm")):
        raise _file_error("is named like an Excel workbook but is not one; save it again as .xlsx or CSV")
    return "csv"


class RowStream:
    """The data rows of an import file, read lazily: iterate for ``(row_number, {header: text})``.

    Cells under no header (an unnamed column, or more cells than the header row has) cannot be mapped;
    they are counted here so the import report can say so instead of losing them silently."""

    MAX_REPORTED_ROWS = 100

    def __init__(self, records, headers: list, names: list):
        self.headers = headers
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
    if fmt == "csv":
        records = _csv_records(fileobj, encoding)
    elif fmt == "xlsx":
        records = _xlsx_records(fileobj)
    else:
        raise ValueError(f"unknown file format {fmt!r}")
    try:
        headers, names = _header(records)
    except BaseException:
        records.close()
        raise
    return headers, RowStream(records, headers, names)


def _header(records):
    for _number, cells in records:
        if "".join(cells).strip():
            break
    else:
        raise _file_error("has no header row: it is empty")
    names = [" ".join(cell.replace("\ufeff", "").split()) for cell in cells]
    while names and not names[-1]:
        names.pop()  # trailing unnamed columns come from a trailing delimiter (e.g. "a,b,c,")
    if len(names) > MAX_COLUMNS:
        raise _file_error(f"has {len(names)} columns; at most {MAX_COLUMNS} can be imported")
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


def _csv_records(fileobj, encoding):
    fileobj.seek(0)
    head = fileobj.read(1 << 16)
    encoding = encoding or _csv_encoding(fileobj, head)
    if b"\x00" in head and not encoding.startswith("utf-16"):
        raise _file_error("is not a text (CSV) file")
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
    raise _file_error(f"line {bad_line}: is neither UTF-8 nor GB18030 text; save the file as CSV UTF-8 "
                      "or say which encoding it uses")


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
        raise _file_error(f"is not valid {encoding.removesuffix('-sig')} text") from None
    except csv.Error as exc:
        raise _file_error(f"row {number + 1}: cannot be read as CSV ({exc})") from None
    finally:
        # The wrapper would close the caller's file when it goes away; the caller may have closed it already.
        with contextlib.suppress(ValueError):
            text.detach()


def _xlsx_records(fileobj):
    fileobj.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about styles and extensions it does not read
            workbook = load_workbook(fileobj, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises anything from BadZipFile to KeyError on a broken file
        raise _file_error(f"is not a readable .xlsx workbook ({type(exc).__name__})") from None
    number = 0
    try:
        if not workbook.worksheets:
            raise _file_error("has no worksheet")
        sheet = workbook.worksheets[0]
        # Some writers record a wrong sheet size; trusting it would cut rows off.
        sheet.reset_dimensions()
        try:
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                yield number, [_render(value) for value in values]
        except Exception as exc:
            raise _file_error(f"row {number + 1}: cannot be read ({type(exc).__name__})") from None
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


# --- rows to leads -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImportDefaults:
    """What the user says about the whole file: used where a row says nothing."""

    source: str = "file_import"
    medium: str = ""
    campaign: str = ""
    tags: tuple = ()
    default_country: str = ""  # a row without a country is taken to be from this one
    external_id_prefix: str = ""  # e.g. "xeducation:" keeps ids from different systems apart


# Spreadsheet spellings of "nothing here", including Excel's error values and drop-downs left at "Select"
# ("unknown" is what the X Education export puts in Country when it has none).
EMPTY_VALUES = frozenset({
    "", "select", "na", "n/a", "null", "none", "-", "--", "nan", "unknown", "无", "未知",
    "#n/a", "#null!", "#value!", "#ref!", "#div/0!", "#num!", "#name?",
})
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


def clean_value(raw: str, target: str = "") -> str:
    """Trimmed, whitespace collapsed, and "" for the placeholders in EMPTY_VALUES."""
    text = " ".join(raw.split())
    if not text.isascii():
        text = " ".join(text.translate(_ZERO_WIDTH).split())
    if len(text) <= 7 and text.casefold() in EMPTY_VALUES:
        # "NA" in a country column is Namibia's ISO code, not a missing value.
        if target == "country" and text.upper() == "NA":
            return "NA"
        return ""
    return text


_TRUE = frozenset({"yes", "y", "true", "t", "1", "1.0", "on", "x", "是", "同意", "已同意", "opt-in", "opted in",
                   "subscribed"})
_FALSE = frozenset({"no", "n", "false", "f", "0", "0.0", "off", "否", "不同意", "未同意", "opt-out", "opted out",
                    "unsubscribed"})


def parse_consent(text: str) -> bool:
    value = text.casefold()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("is not yes or no (yes/no, true/false, 1/0, 是/否)")


_SIZE_NOISE = re.compile(r"employees?|staff|people|persons?|员工|人|名")
_AT_MOST = re.compile(r"^(?:<=?|≤|under|less than|fewer than|up to|少于|小于|不足|不到)\s*"
                      r"|\s*(?:以下|or less|or fewer)$")
_AT_LEAST = re.compile(r"^(?:>=?|≥|over|more than|at least|超过|大于)\s*|\s*(?:\+|及以上|以上|or more|plus)$")
_RANGE = re.compile(r"\s*(?:-|–|—|~|〜|to|至|到)\s*")
_THOUSANDS = re.compile(r"\d{1,3}(?:([,' \u202f.])\d{3})(?:\1\d{3})*")
_DECIMAL = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_MULTIPLIERS = {"k": 1_000, "千": 1_000, "万": 10_000}


def parse_company_size(text: str) -> int:
    """Employees from "250", "250.0", "1,200", "1.200", "10k", "5000+", "500人以上" or a band: a band
    ("50-200", "少于50人") counts as its lower bound, so the size never claims a bigger company than the
    file does and stays inside the usual bands (1-10, 11-50, 51-200, ...)."""
    value = _SIZE_NOISE.sub("", unicodedata.normalize("NFKC", text).casefold()).strip()
    at_most = bool(_AT_MOST.search(value))
    value = _AT_MOST.sub("", _AT_LEAST.sub("", value)).strip()
    parts = _RANGE.split(value) if value else []
    if not 1 <= len(parts) <= 2:
        raise ValueError("is not a number of employees (e.g. 250, 1,200 or 50-200)")
    low = _employee_number(parts[0])
    if len(parts) == 2 and _employee_number(parts[1]) < low:
        raise ValueError("is a range whose upper bound is below its lower bound")
    return min(low, 1) if at_most else low


def _employee_number(text: str) -> int:
    multiplier = _MULTIPLIERS.get(text[-1:], 1)
    if multiplier != 1:
        text = text[:-1].strip()
    if multiplier == 1 and _THOUSANDS.fullmatch(text):
        text = re.sub(r"[,' \u202f.]", "", text)
    if not _DECIMAL.fullmatch(text):
        raise ValueError("is not a number of employees (e.g. 250, 1,200 or 50-200)")
    number = float(text) * multiplier
    if not number.is_integer():
        raise ValueError("is not a whole number of employees")
    return int(number)


_TAG_SEPARATORS = re.compile(r"[,;|，；、]")


def split_tags(text: str) -> list:
    return [tag for tag in (" ".join(part.split()) for part in _TAG_SEPARATORS.split(text)) if tag]


_NAME_SUFFIXES = frozenset({"jr", "jr.", "sr", "sr.", "ii", "iii", "iv", "phd", "ph.d.", "md", "m.d.", "mba",
                            "esq", "esq."})
_HAN = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff]+$")
_COMPOUND_SURNAMES = frozenset({
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒", "夏侯", "轩辕",
    "令狐", "钟离", "端木", "南宫", "西门", "独孤", "百里", "呼延", "闻人", "万俟", "淳于", "申屠", "赫连", "拓跋",
})


def split_full_name(name: str):
    """(first, last) of "First Last", "First Middle Last", "Last, First" and Chinese "张三" / "欧阳娜娜"
    (surname first). A single word is taken as the first name."""
    name = name.replace("，", ",")
    if "," in name:
        before, after = (part.strip() for part in name.split(",", 1))
        if after.casefold() not in _NAME_SUFFIXES:
            return after, before
        name = before
    words = name.split()
    if words and all(_HAN.match(word) for word in words):
        if len(words) > 1:
            return "".join(words[1:]), words[0]
        han = words[0]
        if 2 <= len(han) <= 4:
            surname = han[:2] if len(han) >= 3 and han[:2] in _COMPOUND_SURNAMES else han[:1]
            return han[len(surname):], surname
        return han, ""
    if len(words) <= 1:
        return name.strip(), ""
    return " ".join(words[:-1]), words[-1]


def row_to_lead_input(row: dict, mapping: dict, defaults: ImportDefaults = ImportDefaults()) -> LeadInput:
    """One row as a LeadInput, for normalise_lead to validate. Values are cleaned (clean_value); the raw
    spelling is otherwise kept, so normalisation canonicalises it the same way for every channel.
    A cell that cannot be read (company size, consent) raises InvalidArgument naming ``row.<header>``;
    the mapping is assumed checked by validate_mapping."""
    check = Validator()
    lead = LeadInput()
    tags = list(defaults.tags)
    custom = {}
    full_name = None
    for header, target in mapping.items():
        raw = row.get(header)
        if not raw or target == IGNORE:
            continue
        value = clean_value(raw, target)
        if not value:
            continue
        if target in _TEXT_FIELDS:
            setattr(lead, target, value)
        elif target.startswith(CUSTOM_PREFIX):
            custom[target[len(CUSTOM_PREFIX):]] = value
        elif target == "tags":
            tags.extend(split_tags(value))
        elif target == "full_name":
            full_name = value
        elif target == "company_size":
            try:
                lead.company_size = parse_company_size(value)
            except ValueError as exc:
                check.check(False, f"row.{header}", f"{value[:40]!r} {exc}")
        elif target == "marketing_consent":
            try:
                lead.marketing_consent = parse_consent(value)
            except ValueError as exc:
                check.check(False, f"row.{header}", f"{value[:40]!r} {exc}")
        else:
            check.check(False, f"mapping[{header}]", f"unknown target {target!r}")
    check.raise_if_invalid()

    if full_name:
        # Separate first/last name columns are more precise than a split full name, so they win.
        first, last = split_full_name(full_name)
        lead.first_name = lead.first_name or first
        lead.last_name = lead.last_name or last
    if lead.external_id and defaults.external_id_prefix:
        lead.external_id = defaults.external_id_prefix + lead.external_id
    lead.source = lead.source or defaults.source
    lead.medium = lead.medium or defaults.medium
    lead.campaign = lead.campaign or defaults.campaign
    lead.country = lead.country or defaults.default_country
    lead.tags, seen = [], set()
    for tag in tags:
        if tag.casefold() not in seen:
            seen.add(tag.casefold())
            lead.tags.append(tag)
    lead.custom_fields = custom
    return lead


_TEXT_FIELDS = frozenset(TEXT_TARGETS)
