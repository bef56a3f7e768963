"""services.capture.forms: form definitions are checked as a whole, submissions become LeadInputs with every
bad field named, and the public page, thank-you page and QR code say what the form says."""
import html
import io
import time
from datetime import datetime, timezone
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
import segno
from PIL import Image

from services.capture.domain import normalise_lead
from services.capture.forms import (
    CONSENT_DIGEST_FIELD,
    HONEYPOT_FIELD,
    MAX_FIELDS,
    MAX_PATTERN_INPUT,
    QR_BORDER,
    QR_ERROR,
    Form,
    FormField,
    compile_pattern,
    consent_digest,
    field_errors,
    form_qr_png,
    form_url,
    frame_ancestors,
    is_bot_submission,
    new_public_key,
    origin_allowed,
    parse_submission,
    render_form_html,
    render_thank_you_html,
    validate_form,
)
from services.common.errors import FailedPrecondition, InvalidArgument

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
CONSENT = "I agree that Acme may email me about its products. I can unsubscribe at any time."


def make_form(**overrides) -> Form:
    values = dict(
        form_id="expo-2024", name="Expo 2024", public_key=new_public_key(),
        fields=[
            FormField("email", "email", "Work email", required=True),
            FormField("phone", "tel", "Phone"),
            FormField("first_name", "text", "First name", required=True),
            FormField("company", "text", "Company"),
            FormField("country", "country", "Country"),
            FormField("company_size", "number", "Employees"),
            FormField("industry", "select", "Industry", options=["manufacturing|Manufacturing", "retail|Retail"]),
            FormField("custom.budget", "select", "Budget", options=["small", "large|Large (> 1M)"]),
            FormField("custom.po_number", "text", "PO number", pattern=r"PO-\d{6}"),
            FormField("custom.newsletter", "checkbox", "Newsletter"),
            FormField("custom.booth", "hidden", default="hall-3"),
        ],
        consent_text=CONSENT, consent_required=False, tags=["price-sensitive", "industry:manufacturing"],
        source="website", medium="referral", campaign="expo-2024", default_region="CN",
    )
    values.update(overrides)
    return Form(**values)


def violations(call, *args, **kwargs) -> dict:
    with pytest.raises(InvalidArgument) as raised:
        call(*args, **kwargs)
    return {v.field: v.description for v in raised.value.violations}


GOOD = {"email": "li.wei@bigcorp.cn", "first_name": "Wei", "company": "BigCorp"}


# --- validate_form -------------------------------------------------------------------------------------------

def test_a_good_form_is_returned_normalised():
    form = validate_form(make_form(
        name="  Expo   2024 ", source=" WeChat ", tags=["Price-Sensitive", "price-sensitive", " "],
        allowed_origins=["HTTPS://WWW.Example.com:443", "http://localhost:8080"], default_region="cn",
    ))

    assert form.name == "Expo 2024"
    assert form.source == "wechat"
    assert form.tags == ["price-sensitive"]
    assert form.allowed_origins == ["https://www.example.com", "http://localhost:8080"]
    assert form.default_region == "CN"


def test_validate_form_names_every_violation_at_once():
    form = make_form(
        form_id="Expo_2024!",
        fields=[
            FormField("email", "email", "Email"),
            FormField("nickname", "text", "Nickname"),
            FormField("custom.code", "text", "Code", pattern="([a-z"),
            FormField("email", "email", "Email again"),
            FormField("custom.plan", "select", "Plan"),
            FormField("custom.slow", "text", "Slow", pattern=r"(a+)+$"),
            FormField("phone", "email", "Phone"),
            FormField("first_name", "text", ""),
            FormField("last_name", "text", "x" * 201),
        ],
        allowed_origins=["https://www.example.com/contact", "ftp://example.com", "https://ok.example.com"],
        redirect_url="javascript:alert(1)", language="fr", consent_text="", consent_required=True,
        default_region="XX", source="",
    )

    found = violations(validate_form, form)

    assert set(found) == {
        "form.form_id", "form.fields[1].name", "form.fields[2].pattern", "form.fields[3].name",
        "form.fields[4].options", "form.fields[5].pattern", "form.fields[6].type", "form.fields[7].label",
        "form.fields[8].label", "form.allowed_origins[0]", "form.allowed_origins[1]", "form.redirect_url",
        "form.language", "form.consent_text", "form.default_region", "form.source",
    }
    assert "regular expression" in found["form.fields[2].pattern"]
    assert "fields[0]" in found["form.fields[3].name"]
    assert "too long" in found["form.fields[5].pattern"]
    assert "path" in found["form.allowed_origins[0]"]


@pytest.mark.parametrize("url", ["javascript:alert(1)", "/thanks", "https://acme.example/thanks\r\nSet-Cookie: x=1",
                                 "ftp://acme.example/", "https://[acme.example/thanks"])
def test_a_redirect_url_is_an_absolute_web_address(url):
    assert "form.redirect_url" in violations(validate_form, make_form(redirect_url=url))


def test_validate_form_uses_the_given_field_path():
    assert "draft.form_id" in violations(validate_form, make_form(form_id=""), field="draft")


def test_a_form_needs_an_email_or_a_phone_field():
    found = violations(validate_form, make_form(fields=[FormField("first_name", "text", "Name")]))

    assert "email or a phone" in found["form.fields"]


def test_a_form_has_a_limited_number_of_fields():
    fields = [FormField("email", "email", "Email")] + [
        FormField(f"custom.f{index}", "text", f"F{index}") for index in range(MAX_FIELDS)]

    assert "form.fields" in violations(validate_form, make_form(fields=fields))


@pytest.mark.parametrize("origin", [
    "https://www.example.com/", "www.example.com", "https://*.example.com", "https://user@example.com",
    "https://example.com:99999", "https://example.com?x=1", "javascript:alert(1)",
])
def test_an_origin_is_only_scheme_host_and_port(origin):
    assert "form.allowed_origins[0]" in violations(validate_form, make_form(allowed_origins=[origin]))


@pytest.mark.parametrize("fields, path", [
    ([FormField("email", "email", "E"), FormField("custom.x", "select", "X", options=["a", "a|Again"])],
     "form.fields[1].options[1]"),
    ([FormField("email", "email", "E"), FormField("company_size", "select", "S", options=["10", "many"])],
     "form.fields[1].options[1]"),
    ([FormField("email", "email", "E"), FormField("custom.x", "select", "X", options=["a"], default="b")],
     "form.fields[1].default"),
    ([FormField("email", "email", "E"), FormField("custom.x", "checkbox", "X", pattern="a")],
     "form.fields[1].pattern"),
    ([FormField("email", "email", "E"), FormField("first_name", "text", "N", max_length=500)],
     "form.fields[1].max_length"),
    ([FormField("email", "email", "E", default="not an email")], "form.fields[0].default"),
    ([FormField("email", "email", "E"), FormField("custom.bad key", "text", "X")], "form.fields[1].name"),
])
def test_field_definitions_are_checked(fields, path):
    assert path in violations(validate_form, make_form(fields=fields))


@pytest.mark.parametrize("pattern", [
    r"(a+)+$", r"(\w+\s?)+", r"(a|aa)*", r"(x+x+)+y", r"(.*a){12}", r"(\w)\1", r"[a-z]*[a-z]*[a-z]*[a-z]*",
])
def test_patterns_that_could_backtrack_for_ages_are_refused(pattern):
    with pytest.raises(ValueError):
        compile_pattern(pattern)


@pytest.mark.parametrize("pattern", [
    r"\d{5}(-\d{4})?", r"^[A-Z]{2}\d{6}$", r"(\d{1,3}\.){3}\d{1,3}", r"[A-Za-z]+ [A-Za-z]+", r"PO-\d{6}",
    r"\+?[0-9 ()-]{6,20}",
])
def test_ordinary_patterns_are_accepted(pattern):
    assert compile_pattern(pattern).pattern == pattern


def test_the_worst_accepted_pattern_on_the_longest_input_is_quick():
    slowest = compile_pattern(r"\d*\d*\d*x")
    started = time.perf_counter()

    assert slowest.fullmatch("1" * MAX_PATTERN_INPUT) is None
    assert time.perf_counter() - started < 1.0


# --- parse_submission ---------------------------------------------------------------------------------------

def test_a_good_submission_becomes_a_lead_input():
    form = validate_form(make_form())

    lead = parse_submission(form, {
        **GOOD, "phone": "138 0013 8000", "country": "cn", "company_size": "250", "industry": "retail",
        "custom.budget": "large", "custom.po_number": "PO-123456", "custom.newsletter": "on",
        "visitor_id": "v-123.abc", "unknown": "ignored",
    })

    assert (lead.email, lead.first_name, lead.company, lead.country) == ("li.wei@bigcorp.cn", "Wei", "BigCorp", "CN")
    assert lead.phone == "+8613800138000"
    assert lead.company_size == 250
    assert lead.industry == "retail"
    assert lead.custom_fields == {"budget": "large", "po_number": "PO-123456", "newsletter": "true",
                                  "booth": "hall-3"}
    assert (lead.source, lead.medium, lead.campaign) == ("website", "referral", "expo-2024")
    assert lead.tags == ["price-sensitive", "industry:manufacturing"]
    assert lead.visitor_id == "v-123.abc"
    assert (lead.marketing_consent, lead.consent_text) == (False, "")
    assert normalise_lead(lead, "L-1", NOW, prefix="fields", default_region=form.default_region).phone_e164 == \
        "+8613800138000"


def test_list_values_take_the_first_and_json_scalars_are_read():
    form = validate_form(make_form())

    lead = parse_submission(form, {"email": ["li.wei@bigcorp.cn", "other@x.com"], "first_name": ["Wei"],
                                   "company_size": 40, "custom.newsletter": True, "consent": [True]})

    assert (lead.email, lead.first_name, lead.company_size) == ("li.wei@bigcorp.cn", "Wei", 40)
    assert lead.custom_fields["newsletter"] == "true"
    assert lead.marketing_consent is True


def test_every_bad_field_is_named_at_once():
    form = validate_form(make_form())

    found = violations(parse_submission, form, {
        "email": "not-an-email", "industry": "mining", "custom.po_number": "PO-12", "company_size": "lots",
        "country": "Atlantis", "custom.newsletter": "maybe", "phone": "12", "custom.budget": {"nested": 1},
    })

    assert set(found) == {"fields.email", "fields.first_name", "fields.industry", "fields.custom.po_number",
                          "fields.company_size", "fields.country", "fields.custom.newsletter", "fields.phone",
                          "fields.custom.budget"}
    assert found["fields.first_name"] == "is required"
    assert found["fields.industry"] == "is not one of the choices"
    assert found["fields.custom.po_number"] == "does not have the expected format"


def test_missing_required_fields_are_named():
    form = validate_form(make_form())

    found = violations(parse_submission, form, {"company": "BigCorp"})

    assert found == {"fields.email": "is required", "fields.first_name": "is required"}


def test_an_email_or_a_phone_is_needed_when_both_are_optional():
    form = validate_form(make_form(fields=[FormField("email", "email", "Email"), FormField("phone", "tel", "Phone")]))

    assert "fields.email" in violations(parse_submission, form, {})
    assert parse_submission(form, {"phone": "+49 30 901820"}).phone == "+4930901820"


def test_a_value_longer_than_the_field_allows_is_refused_before_the_pattern_runs():
    form = validate_form(make_form(fields=[FormField("email", "email", "Email"),
                                           FormField("custom.slowish", "text", "S", pattern=r"\d*\d*\d*x")]))

    found = violations(parse_submission, form, {"email": "a@acme.com", "custom.slowish": "1" * 100_000})

    assert found["fields.custom.slowish"].startswith(f"must be at most {MAX_PATTERN_INPUT} characters")


def test_textarea_line_breaks_count_once():
    form = validate_form(make_form(fields=[FormField("email", "email", "Email"),
                                           FormField("address", "textarea", "Address", max_length=5)]))

    assert parse_submission(form, {"email": "a@acme.com", "address": "ab\r\ncd"}).address == "ab\ncd"


def test_a_phone_uses_the_leads_country_before_the_forms_region():
    form = validate_form(make_form())

    lead = parse_submission(form, {**GOOD, "country": "DE", "phone": "030 901820"})

    assert lead.phone == "+4930901820"


def test_required_consent_must_be_ticked():
    form = validate_form(make_form(consent_required=True))

    found = violations(parse_submission, form, GOOD)

    assert set(found) == {"fields.consent"}


def test_ticked_consent_records_the_exact_text_shown():
    form = validate_form(make_form(consent_required=True))

    lead = parse_submission(form, {**GOOD, "consent": "true", CONSENT_DIGEST_FIELD: consent_digest(CONSENT)})

    assert lead.marketing_consent is True
    assert lead.consent_text == CONSENT


def test_consent_is_asked_again_when_the_wording_changed_after_the_page_was_shown():
    form = validate_form(make_form(consent_text="New wording."))

    found = violations(parse_submission, form, {**GOOD, "consent": "on", CONSENT_DIGEST_FIELD: consent_digest(CONSENT)})

    assert "changed" in found["fields.consent"]


def test_no_consent_is_recorded_without_a_text_to_record():
    form = validate_form(make_form(consent_text=""))

    lead = parse_submission(form, {**GOOD, "consent": "on"})

    assert (lead.marketing_consent, lead.consent_text) == (False, "")


def test_hidden_utm_fields_override_the_forms_attribution():
    form = validate_form(make_form())

    lead = parse_submission(form, {**GOOD, "utm_source": "LinkedIn", "utm_medium": "paid", "utm_campaign": "q3"})

    assert (lead.source, lead.medium, lead.campaign) == ("LinkedIn", "paid", "q3")


def test_the_query_source_of_a_qr_code_overrides_the_default_but_not_the_page_fields():
    form = validate_form(make_form())

    from_query = parse_submission(form, GOOD, {"source": "booth-hall-3", "utm_campaign": ["expo-q"]})
    from_body = parse_submission(form, {**GOOD, "utm_source": "wechat"}, {"source": "booth-hall-3"})
    empty = parse_submission(form, {**GOOD, "utm_source": "", "utm_medium": " "}, {})

    assert (from_query.source, from_query.medium, from_query.campaign) == ("booth-hall-3", "referral", "expo-q")
    assert from_body.source == "wechat"
    assert (empty.source, empty.medium) == ("website", "referral")


def test_an_overlong_source_is_named_where_it_came_from():
    form = validate_form(make_form())

    assert "query.source" in violations(parse_submission, form, GOOD, {"source": "x" * 65})


def test_a_malformed_visitor_id_is_dropped_not_fatal():
    form = validate_form(make_form())

    assert parse_submission(form, {**GOOD, "visitor_id": "<script>"}).visitor_id == ""


def test_fields_left_empty_keep_the_lead_defaults_and_normalise():
    form = validate_form(make_form())

    lead = parse_submission(form, {**GOOD, "company_size": "", "country": "", "custom.budget": ""})

    assert (lead.company_size, lead.country, lead.phone) == (0, "", "")
    assert "budget" not in lead.custom_fields
    assert normalise_lead(lead, "L-2", NOW, prefix="fields").company_size == 0


def test_hidden_fields_take_their_default_unless_posted():
    form = validate_form(make_form())

    assert parse_submission(form, {**GOOD, "custom.booth": "hall-9"}).custom_fields["booth"] == "hall-9"
    assert parse_submission(form, GOOD).custom_fields["booth"] == "hall-3"


def test_an_inactive_form_takes_no_submissions():
    with pytest.raises(FailedPrecondition):
        parse_submission(validate_form(make_form(active=False)), GOOD)


def test_field_errors_key_violations_by_input_name():
    form = validate_form(make_form(consent_required=True))
    with pytest.raises(InvalidArgument) as raised:
        parse_submission(form, {"email": "x"})

    errors = field_errors(raised.value)

    assert set(errors) == {"email", "first_name", "consent"}


# --- honeypot and origin -----------------------------------------------------------------------------------

@pytest.mark.parametrize("values, bot", [
    ({**GOOD}, False),
    ({**GOOD, HONEYPOT_FIELD: ""}, False),
    ({**GOOD, HONEYPOT_FIELD: ["  "]}, False),
    ({**GOOD, HONEYPOT_FIELD: "+1 555 0100"}, True),
    ({**GOOD, HONEYPOT_FIELD: ["", "x"]}, False),
    ({**GOOD, HONEYPOT_FIELD: ["x"]}, True),
])
def test_the_honeypot_catches_bots(values, bot):
    assert is_bot_submission(values) is bot


OWN = "https://forms.leadflow.example"


@pytest.mark.parametrize("allowed, origin, referer, expected", [
    ([], None, None, True),
    ([], "https://evil.example", None, True),
    (["https://www.example.com"], "https://www.example.com", None, True),
    (["https://www.example.com"], "https://WWW.EXAMPLE.COM:443", None, True),
    (["https://www.example.com"], "https://evil.example", None, False),
    (["https://www.example.com"], "http://www.example.com", None, False),
    (["https://www.example.com"], "https://www.example.com:8443", None, False),
    (["https://www.example.com"], None, "https://www.example.com/pricing?x=1", True),
    (["https://www.example.com"], None, "https://evil.example/www.example.com", False),
    (["https://www.example.com"], "null", "https://www.example.com/contact", True),
    (["https://www.example.com"], "https://evil.example", "https://www.example.com/", False),
    (["https://www.example.com"], None, None, False),
    (["https://www.example.com"], OWN, None, True),
    (["https://www.example.com"], None, f"{OWN}/f/abc?source=booth", True),
])
def test_origin_allowed(allowed, origin, referer, expected):
    form = validate_form(make_form(allowed_origins=allowed))

    assert origin_allowed(form, origin, referer, own_origin=OWN) is expected


def test_the_own_origin_is_only_allowed_when_given():
    form = validate_form(make_form(allowed_origins=["https://www.example.com"]))

    assert origin_allowed(form, OWN, None) is False


def test_frame_ancestors_limit_embedding_to_the_allowed_origins():
    assert frame_ancestors(make_form(allowed_origins=[])) == "*"
    form = validate_form(make_form(allowed_origins=["https://www.example.com"]))
    assert frame_ancestors(form, OWN) == f"'self' https://www.example.com {OWN}"
    assert frame_ancestors(form, "https://www.example.com") == "'self' https://www.example.com"


# --- the public page ---------------------------------------------------------------------------------------

class _Page(HTMLParser):
    """Inputs, labels and the text of a page, to check what a browser would see."""

    def __init__(self, text):
        super().__init__()
        self.tags, self.labels, self._label = [], {}, None
        self.html_lang = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "html":
            self.html_lang = attrs.get("lang")
        if tag == "label":
            self._label = attrs.get("for")
            self.labels[self._label] = ""

    def handle_endtag(self, tag):
        if tag == "label":
            self._label = None

    def handle_data(self, data):
        if self._label is not None:
            self.labels[self._label] += data

    def controls(self):
        return {attrs["name"]: (tag, attrs) for tag, attrs in self.tags
                if tag in ("input", "select", "textarea") and "name" in attrs}


def render(form, prefill=None, **kwargs):
    return render_form_html(form, f"/f/{form.public_key}", prefill or {}, **kwargs)


def test_every_visible_field_has_a_bound_label_and_required_fields_are_marked():
    form = validate_form(make_form())
    page = _Page(render(form))
    controls = page.controls()

    for item in form.fields:
        tag, attrs = controls[item.name]
        if item.type == "hidden":
            assert attrs["type"] == "hidden"
            continue
        assert page.labels[attrs["id"]].startswith(item.label)
        assert ("required" in attrs) is item.required
    assert page.labels[controls["email"][1]["id"]] == "Work email*"
    assert page.html_lang == "en"
    assert ("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}) in page.tags


def test_labels_and_everything_admin_written_are_escaped():
    form = validate_form(make_form(
        name="<b>Expo</b>",
        fields=[FormField("email", "email", "<script>alert(1)</script>", help_text='"><img src=x>'),
                FormField("custom.x", "select", "X & Y", options=["a|<i>A</i>"])],
        consent_text="I agree to <Acme> & \"partners\".",
    ))

    text = render(form, {"utm_source": '"><script>x</script>', "email": "<svg onload=1>"})

    assert "<script>" not in text and "<img" not in text and "<svg" not in text and "<i>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "X &amp; Y" in text
    page = _Page(text)
    assert page.controls()["utm_source"][1]["value"] == '"><script>x</script>'
    assert page.labels["consent"] == "I agree to <Acme> & \"partners\"."


def test_the_consent_text_is_shown_exactly_next_to_its_checkbox():
    text = "I agree that Acme may contact me.\nSee our privacy notice: https://acme.example/privacy"
    form = validate_form(make_form(consent_text=text, consent_required=True))

    page_text = render(form)
    page = _Page(page_text)
    checkbox = page.controls()["consent"][1]

    assert html.escape(text, quote=True) in page_text
    assert page.labels["consent"] == text + "*"
    assert checkbox["type"] == "checkbox" and "required" in checkbox and "checked" not in checkbox
    assert page.controls()[CONSENT_DIGEST_FIELD][1]["value"] == consent_digest(text)


def test_consent_is_never_prefilled():
    form = validate_form(make_form())

    assert "checked" not in _Page(render(form, {"consent": "true"})).controls()["consent"][1]


def test_the_honeypot_is_an_ordinary_input_hidden_by_css():
    form = validate_form(make_form())
    text = render(form)
    honeypot = _Page(text).controls()[HONEYPOT_FIELD][1]

    assert honeypot["type"] == "text" and honeypot["tabindex"] == "-1" and honeypot["autocomplete"] == "off"
    assert '<div class="hp" aria-hidden="true">' in text
    assert ".hp { position: absolute; left: -10000px;" in text


def test_the_query_prefills_the_hidden_source_and_fields():
    form = validate_form(make_form())

    controls = _Page(render(form, {"source": "booth-hall-3", "utm_medium": ["qr"], "email": "a@acme.com",
                                   "custom.booth": "hall-9", "visitor_id": "v1"})).controls()

    assert controls["utm_source"][1]["value"] == "booth-hall-3"
    assert controls["utm_medium"][1]["value"] == "qr"
    assert controls["utm_campaign"][1]["value"] == ""
    assert controls["email"][1]["value"] == "a@acme.com"
    assert controls["custom.booth"][1]["value"] == "hall-9"
    assert controls["visitor_id"][1]["value"] == "v1"


def test_a_posted_page_round_trips_through_parse_submission():
    form = validate_form(make_form(consent_required=True))
    controls = _Page(render(form, {"source": "booth"})).controls()
    posted = {name: attrs.get("value", "") for name, (tag, attrs) in controls.items()
              if tag == "input" and attrs.get("type") in ("hidden", "text")}

    lead = parse_submission(form, {**posted, **GOOD, "consent": "true"})

    assert lead.source == "booth"
    assert lead.consent_text == CONSENT
    assert not is_bot_submission(posted)


def test_a_chinese_form_uses_chinese_strings():
    form = validate_form(make_form(language="zh", thank_you_message=""))

    page = render(form)
    thanks = render_thank_you_html(form)

    assert _Page(page).html_lang == "zh-CN"
    assert "提交" in page and "标有 * 的为必填项" in page and "请选择" in page and ">中国<" in page
    assert "感谢您的提交" in thanks


def test_the_action_url_is_made_absolute_with_the_own_origin():
    form = validate_form(make_form())

    assert f'action="{OWN}/f/{form.public_key}"' in render(form, own_origin=OWN)
    assert f'action="/f/{form.public_key}"' in render(form)
    with pytest.raises(ValueError):
        render_form_html(form, "javascript:alert(1)", {})


def test_errors_are_shown_next_to_their_fields():
    form = validate_form(make_form())
    with pytest.raises(InvalidArgument) as raised:
        parse_submission(form, {"email": "nope", "first_name": "Wei"})

    page = _Page(render(form, {"email": "nope"}, errors=field_errors(raised.value)))
    email = page.controls()["email"][1]

    assert email["aria-invalid"] == "true"
    assert "f0-error" in email["aria-describedby"]
    assert ("div", {"class": "errors", "role": "alert"}) in page.tags


def test_the_thank_you_page_shows_the_forms_message_escaped():
    page = render_thank_you_html(validate_form(make_form(thank_you_message="Thanks! <We'll call>")))

    assert "Thanks! &lt;We&#39;ll call&gt;" in page
    assert '<html lang="en">' in page


# --- link and QR code ---------------------------------------------------------------------------------------

def test_form_url_encodes_the_attribution():
    url = form_url("https://forms.leadflow.example/", "abc_DEF-123", source="booth hall#3&x", campaign="展会")
    parts = urlsplit(url)

    assert (parts.scheme, parts.netloc, parts.path) == ("https", "forms.leadflow.example", "/f/abc_DEF-123")
    assert parse_qs(parts.query) == {"source": ["booth hall#3&x"], "utm_campaign": ["展会"]}
    assert form_url("https://f.example", "k") == "https://f.example/f/k"


def _modules(png: bytes, scale: int) -> list[list[bool]]:
    """The dark/light modules of a QR code PNG, read at the centre of each module."""
    image = Image.open(io.BytesIO(png)).convert("L")
    count = image.width // scale
    assert image.width == image.height == count * scale
    return [[image.getpixel((x * scale + scale // 2, y * scale + scale // 2)) < 128 for x in range(count)]
            for y in range(count)]


@pytest.mark.parametrize("scale", [3, 8])
def test_the_qr_code_encodes_the_form_url(scale):
    url = form_url("https://forms.leadflow.example", new_public_key(), source="booth-hall-3", medium="qr")

    png = form_qr_png(url, scale=scale)

    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    expected = segno.make(url, error=QR_ERROR, boost_error=False, micro=False)
    modules = _modules(png, scale)
    border = QR_BORDER
    size = len(modules) - 2 * border
    assert size == expected.symbol_size(scale=1, border=0)[0]
    assert [row[border:border + size] for row in modules[border:border + size]] == \
        [[bool(cell) for cell in row] for row in expected.matrix]
    quiet = modules[:border] + modules[-border:] + [row[:border] + row[-border:] for row in modules]
    assert not any(any(row) for row in quiet)
    assert expected.error == "Q"


def test_a_qr_code_of_another_url_differs():
    png = form_qr_png("https://forms.leadflow.example/f/aaa?source=x")
    other = segno.make("https://forms.leadflow.example/f/aaa?source=y", error=QR_ERROR, boost_error=False, micro=False)

    modules = _modules(png, 8)
    inner = [row[QR_BORDER:-QR_BORDER] for row in modules[QR_BORDER:-QR_BORDER]]

    assert inner != [[bool(cell) for cell in row] for row in other.matrix]


def test_qr_limits():
    with pytest.raises(ValueError):
        form_qr_png("https://x.example/" + "a" * 2000)
    with pytest.raises(ValueError):
        form_qr_png("https://x.example/", scale=0)
