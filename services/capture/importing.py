"""Lead file import, the pure part: guess and check the column mapping of a file read by
``services.common.tabular``, and turn one row into a LeadInput (normalise_lead then validates it like any
other channel's capture)."""
import re
import unicodedata
from dataclasses import dataclass

from services.capture.domain import MAX_CUSTOM_FIELDS, MAX_CUSTOM_KEY, LeadInput, custom_key_from, is_custom_key
from services.common.errors import Validator

__all__ = [
    "TARGETS", "TEXT_TARGETS", "IGNORE", "CUSTOM_PREFIX", "EMPTY_VALUES", "guess_mapping",
    "validate_mapping", "column_for_field", "ImportDefaults",
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
