"""services.capture.importing: lead files (CSV, XLSX) become rows, a column mapping and LeadInputs."""
import io
import tracemalloc
from datetime import date, datetime

import pytest
from openpyxl import Workbook

from services.capture.domain import MAX_CUSTOM_FIELDS, LeadInput
from services.capture.importing import (
    ImportDefaults,
    column_for_field,
    guess_mapping,
    parse_company_size,
    row_to_lead_input,
    split_full_name,
    validate_mapping,
)
from services.common.errors import InvalidArgument
from services.common.tabular import MAX_COLUMNS, detect_format, read_rows

# The column names of the public X Education data set (its schema, not its rows).
XEDUCATION_HEADER = [
    "Prospect ID", "Lead Number", "Lead Origin", "Lead Source", "Do Not Email", "Do Not Call", "Converted",
    "TotalVisits", "Total Time Spent on Website", "Page Views Per Visit", "Last Activity", "Country",
    "Specialization", "How did you hear about X Education", "What is your current occupation",
    "What matters most to you in choosing a course", "Search", "Magazine", "Newspaper Article",
    "X Education Forums", "Newspaper", "Digital Advertisement", "Through Recommendations",
    "Receive More Updates About Our Courses", "Tags", "Lead Quality", "Update me on Supply Chain Content",
    "Get updates on DM Content", "Lead Profile", "City", "Asymmetrique Activity Index",
    "Asymmetrique Profile Index", "Asymmetrique Activity Score", "Asymmetrique Profile Score",
    "I agree to pay the amount through cheque", "A free copy of Mastering The Interview", "Last Notable Activity",
]


def violations(call, *args, **kwargs) -> dict:
    with pytest.raises(InvalidArgument) as raised:
        call(*args, **kwargs)
    return {v.field: v.description for v in raised.value.violations}


def csv_rows(data: bytes, **kwargs):
    headers, rows = read_rows(io.BytesIO(data), "csv", **kwargs)
    return headers, list(rows)


# --- guess_mapping -------------------------------------------------------------------------------------

def test_guess_mapping_on_the_xeducation_header():
    mapping = guess_mapping(XEDUCATION_HEADER)

    assert list(mapping) == XEDUCATION_HEADER
    assert {h: t for h, t in mapping.items() if not t.startswith("custom:")} == {
        "Prospect ID": "external_id", "Lead Origin": "medium", "Lead Source": "source", "Country": "country",
        "Tags": "tags", "City": "city",
    }
    # "Do Not Email" is an opt-out, not an email address nor a consent: it stays a custom field.
    assert mapping["Do Not Email"] == "custom:do_not_email"
    assert mapping["Lead Number"] == "custom:lead_number"
    assert mapping["TotalVisits"] == "custom:total_visits"
    assert mapping["How did you hear about X Education"] == "custom:how_did_you_hear_about_x_education"
    validate_mapping(mapping, XEDUCATION_HEADER)
    assert guess_mapping(XEDUCATION_HEADER) == mapping


def test_guess_mapping_on_an_english_crm_export():
    header = ["Record ID", "First Name", "Last Name", "E-mail", "Mobile Phone", "Company Name", "Job Title",
              "Country/Region", "State/Province", "City", "Street Address", "Website URL", "Industry",
              "Number of Employees", "utm_source", "UTM_Medium", "utm campaign", "Marketing Opt-In", "Tags",
              "Labels", "Notes", "Phone Number", "Created Date", ""]

    assert guess_mapping(header) == {
        "Record ID": "external_id", "First Name": "first_name", "Last Name": "last_name", "E-mail": "email",
        "Mobile Phone": "custom:mobile_phone", "Company Name": "company", "Job Title": "title",
        "Country/Region": "country",
        "State/Province": "region", "City": "city", "Street Address": "address", "Website URL": "website",
        "Industry": "industry", "Number of Employees": "company_size", "utm_source": "source",
        "UTM_Medium": "medium", "utm campaign": "campaign", "Marketing Opt-In": "marketing_consent",
        "Tags": "tags", "Labels": "tags", "Notes": "custom:notes",
        # "Phone Number" is the stronger phone guess; the other phone column is kept, not dropped.
        "Phone Number": "phone",
        "Created Date": "custom:created_date", "": "ignore",
    }


def test_guess_mapping_on_a_chinese_header():
    header = ["姓名", "手机", "邮箱（必填）", "公司名称", "职位", "国家", "省份", "城市", "来源", "标签", "行业",
              "公司规模", "电话", "微信号", "备注 Remarks"]

    mapping = guess_mapping(header)

    assert mapping == {
        "姓名": "full_name", "手机": "phone", "邮箱（必填）": "email", "公司名称": "company", "职位": "title",
        "国家": "country", "省份": "region", "城市": "city", "来源": "source", "标签": "tags", "行业": "industry",
        "公司规模": "company_size",
        # No Latin letters to make a key from: the column's position names it.
        "电话": "custom:column_13", "微信号": "custom:column_14", "备注 Remarks": "custom:remarks",
    }


@pytest.mark.parametrize("header, target", [
    ("Email Address", "email"), ("EMAIL", "email"), ("email_address", "email"), ("邮箱", "email"),
    ("Phone Number", "phone"), ("Mobile", "phone"), ("手机号码", "phone"), ("电话", "phone"),
    ("Lead Source", "source"), ("lead_source", "source"), ("来源", "source"),
    ("Prospect ID", "external_id"), ("Lead ID", "external_id"), ("External ID", "external_id"), ("ID", "external_id"),
    ("Organization", "company"), ("公司", "company"), ("国家", "country"), ("Job Title", "title"),
    ("Full Name", "full_name"), ("Name", "full_name"), ("Company Size (employees)", "company_size"),
    ("ＥＭＡＩＬ", "email"),
])
def test_guess_mapping_recognises_common_spellings(header, target):
    assert guess_mapping([header]) == {header: target}


def test_guess_mapping_keeps_custom_keys_valid_unique_and_within_the_limit():
    header = [f"Score {n}" for n in range(60)] + ["score-1", "2nd Phone", "Ünïcode"]

    mapping = guess_mapping(header)

    custom = [t for t in mapping.values() if t.startswith("custom:")]
    assert len(custom) == MAX_CUSTOM_FIELDS == len(set(custom))
    assert mapping["Score 0"] == "custom:score_0"
    assert mapping["Score 59"] == "ignore"
    validate_mapping(mapping, header)
    assert guess_mapping(["score 1", "Score-1", "2nd Phone", "Ünïcode"]) == {
        "score 1": "custom:score_1", "Score-1": "custom:score_1_2", "2nd Phone": "custom:field_2nd_phone",
        "Ünïcode": "custom:unicode",
    }


# --- validate_mapping ----------------------------------------------------------------------------------

def test_validate_mapping_names_each_bad_column():
    headers = ["Email", "Mail 2", "Phone", "Notes", "Memo", "Source"]
    mapping = {"Email": "email", "Mail 2": " email ", "Phone": "telephone", "Notes": "custom:1notes",
               "Memo": "custom:memo", "Source": "custom:memo", "Fax": "phone"}

    found = violations(validate_mapping, mapping, headers, field="import.mapping")

    assert set(found) == {"import.mapping[Mail 2]", "import.mapping[Phone]", "import.mapping[Notes]",
                          "import.mapping[Source]", "import.mapping[Fax]"}
    assert "'Email' is already mapped to email" in found["import.mapping[Mail 2]"]
    assert "unknown target 'telephone'" in found["import.mapping[Phone]"]
    assert "custom key" in found["import.mapping[Notes]"]
    assert "already mapped to custom:memo" in found["import.mapping[Source]"]
    assert "no column" in found["import.mapping[Fax]"]


def test_validate_mapping_allows_several_tag_and_ignored_columns_and_names_beside_a_full_name():
    headers = ["Name", "First", "Tags", "Labels", "A", "B"]
    mapping = {"Name": "full_name", "First": "first_name", "Tags": "tags", "Labels": "tags", "A": "ignore",
               "B": " ignore"}

    assert validate_mapping(mapping, headers)["B"] == "ignore"


def test_validate_mapping_limits_custom_fields():
    headers = [f"c{n}" for n in range(MAX_CUSTOM_FIELDS + 1)]

    found = violations(validate_mapping, {h: f"custom:{h}" for h in headers}, headers)

    assert list(found) == [f"mapping[c{MAX_CUSTOM_FIELDS}]"]


# --- detect_format and CSV -----------------------------------------------------------------------------

def test_detect_format():
    assert detect_format("leads.csv", b"email,phone\r\n") == "csv"
    assert detect_format("export", b"PK\x03\x04\x14\x00") == "xlsx"
    assert detect_format("leads.XLSX", b"PK\x03\x04") == "xlsx"
    assert "xls" in violations(detect_format, "old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1")["file"]
    assert "not one" in violations(detect_format, "leads.xlsx", b"email,phone\n")["file"]
    assert "OpenDocument" in violations(detect_format, "leads.ods", b"PK\x03\x04")["file"]


def test_csv_with_bom_crlf_trailing_comma_and_select():
    data = "\ufeffProspect ID,Lead Source,City,\r\nP-1,Google,Select,\r\nP-2,google,Mumbai,\r\n".encode()

    headers, rows = csv_rows(data)

    assert headers == ["Prospect ID", "Lead Source", "City"]
    assert rows == [(2, {"Prospect ID": "P-1", "Lead Source": "Google", "City": "Select"}),
                    (3, {"Prospect ID": "P-2", "Lead Source": "google", "City": "Mumbai"})]


def test_csv_quoted_newlines_and_blank_lines_keep_spreadsheet_row_numbers():
    data = (b'email,address,note\n'
            b'a@x.com,"1 Main St\nSpringfield",first\n'
            b'\n'
            b',,\n'
            b'b@x.com,"2 ""Elm"" Rd\r\nShelbyville",second\n'
            b'c@x.com,,"a, b"')

    headers, rows = csv_rows(data)

    assert [number for number, _ in rows] == [2, 5, 6]
    assert rows[0][1]["address"] == "1 Main St\nSpringfield"
    assert rows[1][1]["address"] == '2 "Elm" Rd\r\nShelbyville'
    assert rows[2][1] == {"email": "c@x.com", "address": "", "note": "a, b"}


def test_csv_with_semicolons_and_decimal_commas():
    data = "Name;Company;Employees\r\nAnn Lee;Acme, Inc;1,5\r\nBo;Beta;12\r\n".encode()

    headers, rows = csv_rows(data)

    assert headers == ["Name", "Company", "Employees"]
    assert rows[0] == (2, {"Name": "Ann Lee", "Company": "Acme, Inc", "Employees": "1,5"})


def test_csv_with_excel_sep_hint_counts_from_the_header():
    headers, rows = csv_rows(b"sep=;\r\nemail;phone\r\na@x.com;+15551234567\r\n")

    assert headers == ["email", "phone"]
    assert rows == [(2, {"email": "a@x.com", "phone": "+15551234567"})]


def test_csv_from_a_chinese_excel_in_gb18030():
    text = "姓名,手机,公司\r\n张三,13800138000,海尔机器人\r\n欧阳娜娜,13900139000,深圳腾讯\r\n"

    headers, rows = csv_rows(text.encode("gb18030"))

    assert headers == ["姓名", "手机", "公司"]
    assert rows[1] == (3, {"姓名": "欧阳娜娜", "手机": "13900139000", "公司": "深圳腾讯"})


def test_gb18030_detected_even_when_the_first_rows_are_ascii():
    data = b"email,company\n" + b"a@x.com,Acme\n" * 20_000 + "b@x.com,华为\n".encode("gb18030")

    headers, rows = csv_rows(data)

    assert rows[-1] == (20_002, {"email": "b@x.com", "company": "华为"})


def test_csv_in_utf16_with_tabs_from_excel_unicode_text():
    headers, rows = csv_rows("email\tcompany\r\nli@x.cn\t华为\r\n".encode("utf-16"))

    assert rows == [(2, {"email": "li@x.cn", "company": "华为"})]


def test_csv_duplicate_headers_are_made_unique_and_stray_cells_are_counted():
    data = b"Email,Phone,email,,Note\na@x.com,1,b@x.com,stray,n\nc@x.com,2,,,n,extra,\n"

    headers, rows = read_rows(io.BytesIO(data), "csv")
    read = list(rows)

    assert headers == ["Email", "Phone", "email (2)", "Note"]
    assert read[0] == (2, {"Email": "a@x.com", "Phone": "1", "email (2)": "b@x.com", "Note": "n"})
    assert read[1][1]["email (2)"] == ""
    assert rows.unnamed_columns == ["D"]
    assert (rows.ignored_cells, rows.ignored_cell_rows) == (2, [2, 3])


def test_csv_rows_shorter_than_the_header_are_padded():
    assert csv_rows(b"a,b,c\n1\n")[1] == [(2, {"a": "1", "b": "", "c": ""})]


def test_reading_leaves_the_callers_file_open():
    fileobj = io.BytesIO(b"email\na@x.com\n")
    _, rows = read_rows(fileobj, "csv")
    list(rows)
    assert not fileobj.closed


@pytest.mark.parametrize("data, message", [
    (b"", "no header row"),
    (b"\r\n\r\n,,\r\n", "no header row"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a text"),
    (",".join(f"c{n}" for n in range(MAX_COLUMNS + 1)).encode(), "at most 500"),
])
def test_unreadable_csv_files_are_rejected_naming_the_file(data, message):
    assert message in violations(read_rows, io.BytesIO(data), "csv")["file"]


def test_a_file_that_is_neither_utf8_nor_gb18030_is_rejected_naming_its_line():
    data = b"email,company\na@x.com,Acme\nb@x.com,\x81\x20\n"

    assert violations(read_rows, io.BytesIO(data), "csv")["file"].startswith("line 3: is neither UTF-8 nor GB18030")


def test_an_explicit_encoding_overrides_detection():
    data = "email,company\nb@x.com,Müller GmbH\n".encode("cp1252")

    assert csv_rows(data, encoding="cp1252")[1] == [(2, {"email": "b@x.com", "company": "Müller GmbH"})]


# --- XLSX ----------------------------------------------------------------------------------------------

def xlsx_bytes(rows) -> bytes:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Leads")
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_xlsx_renders_cells_as_the_user_sees_them():
    data = xlsx_bytes([
        ["Email", "Phone", "Employees", "Score", "Met on", "Called at", "Consent", "Name", "Name"],
        ["a@x.com", 8613800138000, 250.0, 2.5, date(2024, 5, 1), datetime(2024, 5, 1, 13, 45), True, "Ann", None],
        [],
        [None, None, None, None, None, None, None, None, None],
        ["b@x.com", "+86 138 0013 8001", 0.1 + 0.2, 7, None, None, False, None, "Bo"],
    ])
    assert detect_format("leads.xlsx", data[:8]) == "xlsx"

    headers, rows = read_rows(io.BytesIO(data), "xlsx")

    assert headers == ["Email", "Phone", "Employees", "Score", "Met on", "Called at", "Consent", "Name",
                       "Name (2)"]
    assert list(rows) == [
        (2, {"Email": "a@x.com", "Phone": "8613800138000", "Employees": "250", "Score": "2.5",
             "Met on": "2024-05-01", "Called at": "2024-05-01T13:45:00", "Consent": "TRUE", "Name": "Ann",
             "Name (2)": ""}),
        (5, {"Email": "b@x.com", "Phone": "+86 138 0013 8001", "Employees": "0.3", "Score": "7",
             "Met on": "", "Called at": "", "Consent": "FALSE", "Name": "", "Name (2)": "Bo"}),
    ]


def test_xlsx_header_below_empty_rows_keeps_sheet_row_numbers():
    data = xlsx_bytes([[], ["email", None, "company"], ["a@x.com", "x", "Acme"]])

    headers, rows = read_rows(io.BytesIO(data), "xlsx")

    assert headers == ["email", "company"]
    assert list(rows) == [(3, {"email": "a@x.com", "company": "Acme"})]
    assert rows.unnamed_columns == ["B"] and rows.ignored_cell_rows == [3]


def test_a_broken_workbook_is_rejected_naming_the_file():
    assert "xlsx" in violations(read_rows, io.BytesIO(b"PK\x03\x04 not really a zip"), "xlsx")["file"]


# --- a large file streams --------------------------------------------------------------------------------

def test_100k_rows_stream_with_bounded_memory(tmp_path):
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("Lead ID,Email,Full Name,Company,Employees,Lead Source,Tags,Notes\r\n")
        for n in range(100_000):
            out.write(f"L{n},user{n}@example.com,Ann Lee {n},Acme {n % 97},{n % 900}-{n % 900 + 50},"
                      f"Google,\"a, b\",\"note {n}\nline two\"\r\n")
    size_mb = path.stat().st_size / 2**20
    defaults = ImportDefaults(source="import", external_id_prefix="big:")

    tracemalloc.start()
    try:
        with path.open("rb") as fileobj:
            headers, rows = read_rows(fileobj, "csv")
            count, last = 0, None
            for item in rows:
                count, last = count + 1, item
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert count == 100_000 and last[0] == 100_001
    mapping = validate_mapping(guess_mapping(headers), headers)
    lead = row_to_lead_input(last[1], mapping, defaults)
    assert (lead.external_id, lead.tags, lead.company_size) == ("big:L99999", ["a", "b"], 99999 % 900)
    # Reading the ~9 MB file whole would show here; a few MB of buffers are allowed.
    assert size_mb > 8 and peak < 6 * 2**20, f"peak {peak / 2**20:.1f} MB for a {size_mb:.0f} MB file"


# --- row_to_lead_input ----------------------------------------------------------------------------------

def test_row_to_lead_input_cleans_and_maps_every_kind_of_target():
    mapping = {"ID": "external_id", "Name": "full_name", "Mail": "email", "Co": "company", "Size": "company_size",
               "Consent": "marketing_consent", "Tags": "tags", "Labels": "tags", "Src": "source",
               "Spec": "custom:specialization", "Occupation": "custom:occupation", "Skip": "ignore",
               "Country": "country"}
    row = {"ID": " 7927b2df ", "Name": "Lee,  Ann", "Mail": " ann@acme.com", "Co": "Acme\n  Robotics",
           "Size": "1,200", "Consent": "是", "Tags": "VIP; trade show | vip", "Labels": "Asia，Hot", "Src": "",
           "Spec": "Select", "Occupation": "Student", "Skip": "whatever", "Country": "India"}
    defaults = ImportDefaults(source="xeducation", medium="import", campaign="2024 backfill", tags=("imported",),
                              default_country="IN", external_id_prefix="xeducation:")

    lead = row_to_lead_input(row, mapping, defaults)

    assert lead == LeadInput(
        email="ann@acme.com", first_name="Ann", last_name="Lee", company="Acme Robotics", company_size=1200,
        marketing_consent=True, tags=["imported", "VIP", "trade show", "Asia", "Hot"], source="xeducation",
        medium="import", campaign="2024 backfill", country="India", external_id="xeducation:7927b2df",
        custom_fields={"occupation": "Student"},
    )


@pytest.mark.parametrize("placeholder", ["Select", "", "  ", "NA", "n/a", "NULL", "None", "-", "nan", "#N/A",
                                         "unknown", "未知"])
def test_placeholders_are_empty(placeholder):
    mapping = {"Src": "source", "City": "city", "Spec": "custom:spec", "Tags": "tags"}
    row = {"Src": placeholder, "City": placeholder, "Spec": placeholder, "Tags": placeholder}

    lead = row_to_lead_input(row, mapping, ImportDefaults(source="file_import", default_country="CN"))

    assert (lead.source, lead.city, lead.custom_fields, lead.tags, lead.country) == ("file_import", "", {}, [], "CN")


def test_na_in_a_country_column_is_namibia():
    assert row_to_lead_input({"C": "NA"}, {"C": "country"}).country == "NA"


def test_row_values_keep_their_spelling_for_normalisation():
    mapping = {"Lead Source": "source", "Country": "country"}

    sources = [row_to_lead_input({"Lead Source": s, "Country": "India"}, mapping) for s in ("Google", "google")]

    assert [(lead.source, lead.country) for lead in sources] == [("Google", "India"), ("google", "India")]


def test_separate_name_columns_win_over_a_full_name():
    mapping = {"Name": "full_name", "Last": "last_name"}

    lead = row_to_lead_input({"Name": "Mary Ann Smith", "Last": "Smith-Jones"}, mapping)

    assert (lead.first_name, lead.last_name) == ("Mary Ann", "Smith-Jones")


@pytest.mark.parametrize("name, first, last", [
    ("Ann Lee", "Ann", "Lee"), ("Mary Ann Smith", "Mary Ann", "Smith"), ("Lee, Ann", "Ann", "Lee"),
    ("John Smith, Jr.", "John", "Smith"), ("Madonna", "Madonna", ""), ("张三", "三", "张"),
    ("欧阳娜娜", "娜娜", "欧阳"), ("王 小明", "小明", "王"),
])
def test_split_full_name(name, first, last):
    assert split_full_name(name) == (first, last)


@pytest.mark.parametrize("text, size", [
    ("250", 250), ("250.0", 250), ("1,200", 1200), ("1.200", 1200), ("1 200", 1200), ("10,000+", 10000),
    ("50-200", 50), ("51 – 200 employees", 51), ("50 to 200", 50), ("500人以上", 500), ("少于50人", 1),
    ("10k", 10000), ("1.5k", 1500), ("２００", 200), ("0", 0),
])
def test_company_size_takes_a_number_or_the_lower_bound_of_a_band(text, size):
    assert parse_company_size(text) == size


@pytest.mark.parametrize("text", ["many", "2.5", "200-50", "-5", "1,2,3", "50-100-200"])
def test_company_size_that_is_not_a_number_names_the_column(text):
    found = violations(row_to_lead_input, {"Employees": text, "Opt in": "maybe"},
                       {"Employees": "company_size", "Opt in": "marketing_consent"})

    assert set(found) == {"row.Employees", "row.Opt in"}
    assert "yes or no" in found["row.Opt in"]


@pytest.mark.parametrize("text, consent", [
    ("yes", True), ("Y", True), ("TRUE", True), ("1", True), ("是", True),
    ("no", False), ("False", False), ("0", False), ("否", False),
])
def test_marketing_consent(text, consent):
    assert row_to_lead_input({"C": text}, {"C": "marketing_consent"}).marketing_consent is consent


def test_an_unknown_target_is_named_by_its_column():
    assert "unknown target" in violations(row_to_lead_input, {"A": "x"}, {"A": "phone_number"})["mapping[A]"]


def test_column_for_field_translates_violations_back_to_headers():
    mapping = {"Name": "full_name", "Mail": "email", "Src": "source", "Spec": "custom:specialization"}

    assert column_for_field(mapping, "lead.email") == "Mail"
    assert column_for_field(mapping, "lead.first_name") == "Name"
    assert column_for_field(mapping, "lead.attribution.source") == "Src"
    assert column_for_field(mapping, "lead.custom_fields[specialization]") == "Spec"
    assert column_for_field(mapping, "row.Employees") == "Employees"
    assert column_for_field(mapping, "mapping[Mail]") == "Mail"
    assert column_for_field(mapping, "lead.country") is None


# --- the real X Education export ---------------------------------------------------------------------------

@pytest.mark.needs_shared_data
def test_the_xeducation_file(shared_data):
    path = shared_data / "xeducation-leads" / "train.csv"
    defaults = ImportDefaults(source="xeducation", external_id_prefix="xeducation:")

    with path.open("rb") as fileobj:
        assert detect_format(path.name, fileobj.read(8)) == "csv"
        headers, rows = read_rows(fileobj, "csv")
        assert headers == XEDUCATION_HEADER  # the trailing unnamed column is dropped
        mapping = validate_mapping(guess_mapping(headers), headers)
        read = [(number, row, row_to_lead_input(row, mapping, defaults)) for number, row in rows]

    assert len(read) == 7392 and [n for n, _, _ in read] == list(range(2, 7394))
    assert rows.ignored_cells == 0 and rows.unnamed_columns == []
    leads = [lead for _, _, lead in read]
    assert all(lead.external_id.startswith("xeducation:") and len(lead.external_id) > 20 for lead in leads)
    assert len({lead.external_id for lead in leads}) == 7392
    assert read[0][2].external_id == "xeducation:" + read[0][1]["Prospect ID"]

    selected = [(row, lead) for _, row, lead in read if row["City"] == "Select"]
    assert selected and all(lead.city == "" for _, lead in selected)
    assert not any("Select" in lead.custom_fields.values() for lead in leads)
    assert {"Google", "google"} <= {lead.source for lead in leads}
    assert {lead.source for _, row, lead in read if not row["Lead Source"]} == {"xeducation"}
    assert "India" in {lead.country for lead in leads}
    unknown = [lead for _, row, lead in read if row["Country"] == "unknown"]
    assert unknown and all(lead.country == "" for lead in unknown)
    assert all(len(lead.custom_fields) <= MAX_CUSTOM_FIELDS for lead in leads)
