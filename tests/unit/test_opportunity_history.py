"""services.opportunity.history_import: a sales history's rows become opportunities, or rejections
naming the column; untidy spellings are resolved and counted, uncertain rows refused."""
from datetime import date

import pytest

from services.common.errors import InvalidArgument
from services.opportunity import history_import as history
from services.opportunity.pipeline import BUILTIN_NEW_BUSINESS, compile_pipeline

PIPELINE = compile_pipeline(BUILTIN_NEW_BUSINESS)
TODAY = date(2026, 11, 29)
MAVEN_HEADER = ["opportunity_id", "sales_agent", "product", "account", "deal_stage", "engage_date", "close_date",
                "close_value"]


def reference() -> history.Reference:
    ref = history.Reference()
    for row in ({"account": "Cancity", "industry": "Retail", "employees": "2,448", "location": "United States"},
                {"account": "Betatech", "industry": "medical", "employees": "1185", "location": "Philipines"}):
        item = history.account_row(row)
        ref.accounts[item.key] = item
    for row in ({"owner": "Moses Frase", "manager": "Dustin Brinkmann", "office": "Central"},):
        item = history.team_row(row)
        ref.teams[item.key] = item
    for row in ({"product": "GTX Pro", "series": "GTX", "price": "4821"},
                {"product": "MG Special", "series": "MG", "price": "55"}):
        item = history.product_row(row)
        ref.products[item.key] = item
    return ref


def read(values: dict, quirks=None, stage_words=None, ref=None):
    stages = history.stage_map(PIPELINE, stage_words or {"Prospecting": "qualification", "Engaging": "discovery"})
    return history.opportunity_of({"external_id": "1C1I7A6R", "owner": "Moses Frase", **values}, stages,
                                  ref or reference(), quirks or history.Quirks(), {}, "imported", TODAY)


def test_the_usual_column_names_are_found_without_a_mapping():
    mapping = history.column_mapping(history.OPPORTUNITIES, MAVEN_HEADER, {}, "file[opportunities]")

    assert mapping == {"opportunity_id": "external_id", "sales_agent": "owner", "product": "product",
                       "account": "account", "deal_stage": "stage", "engage_date": "engaged_on",
                       "close_date": "closed_on", "close_value": "amount"}


def test_a_missing_required_column_or_an_unknown_field_is_named():
    with pytest.raises(InvalidArgument) as missing:
        history.column_mapping(history.OPPORTUNITIES, ["Deal", "Stage"], {}, "file[opportunities]")
    with pytest.raises(InvalidArgument) as unknown:
        history.column_mapping(history.OPPORTUNITIES, MAVEN_HEADER,
                               {"sales_agent": "owner", "deal_stage": "phase", "Nope": "stage"},
                               "file[opportunities]")

    assert {v.field for v in missing.value.violations} == {"file[opportunities].mapping"}
    assert any("external_id" in v.description for v in missing.value.violations)
    assert any("owner" in v.description for v in missing.value.violations)
    assert {v.field for v in unknown.value.violations} == {"file[opportunities].mapping[deal_stage]",
                                                          "file[opportunities].mapping[Nope]"}


def test_a_won_deal_is_resolved_against_the_reference_tables():
    quirks = history.Quirks()
    deal = read({"product": "GTXPro", "account": "cancity", "stage": "Won", "engaged_on": "2016-10-20",
                 "closed_on": "2017-03-01", "amount": "1054"}, quirks)

    assert (deal.stage_id, deal.status, deal.amount) == ("closed_won", "won", "1054")
    assert (deal.owner_id, deal.manager_id, deal.team, deal.office) == \
        ("moses.frase", "dustin.brinkmann", "dustin-brinkmann-team", "Central")
    assert (deal.product, deal.account.name, deal.account.employees) == ("GTX Pro", "Cancity", 2448)
    assert (deal.engaged_on, deal.closed_on) == (date(2016, 10, 20), date(2017, 3, 1))
    assert deal.name == "Cancity - GTX Pro"
    assert quirks.notes() == ["product 'GTXPro' read as the listed 'GTX Pro' (1 rows)"]


def test_open_stages_come_from_the_stage_map_or_the_pipeline_names():
    mapped = read({"stage": "Engaging", "engaged_on": "2017-05-01"})
    by_name = read({"stage": "Proposal"}, stage_words={})

    assert (mapped.stage_id, mapped.status, mapped.closed_on) == ("discovery", "open", None)
    assert (by_name.stage_id, by_name.status, by_name.engaged_on) == ("proposal", "open", None)


def test_a_lost_deal_worth_zero_has_an_unknown_amount():
    quirks = history.Quirks()
    deal = read({"stage": "Lost", "engaged_on": "2017-01-02", "closed_on": "2017-02-01", "amount": "0"}, quirks)

    assert (deal.status, deal.amount) == ("lost", "")
    assert quirks.zero_lost_values == 1


@pytest.mark.parametrize("values, field_name, words", [
    ({"stage": "Negotiating hard"}, "stage", "map it with stage_map"),
    ({"stage": ""}, "stage", "is empty"),
    ({"stage": "Won", "engaged_on": "2017-01-02"}, "closed_on", "needs its close date"),
    ({"stage": "Won", "engaged_on": "2017-03-02", "closed_on": "2017-03-01"}, "closed_on", "before the engagement"),
    ({"stage": "Won", "closed_on": "2027-01-01"}, "closed_on", "future"),
    ({"stage": "Won", "closed_on": "01/03/2017"}, "closed_on", "is not a date"),
    ({"stage": "Won", "closed_on": "2017-03-01", "amount": "-5"}, "amount", "non-negative"),
    ({"stage": "Won", "closed_on": "2017-03-01", "amount": "12k"}, "amount", "decimal"),
    ({"stage": "Won", "closed_on": "2017-03-01", "owner": ""}, "owner", "is empty"),
])
def test_uncertain_rows_are_rejected_naming_the_field(values, field_name, words):
    with pytest.raises(history.RowRejected) as rejected:
        read(values)

    assert rejected.value.field_name == field_name
    assert words in rejected.value.reason


def test_names_the_references_lack_are_kept_and_counted():
    quirks = history.Quirks()
    deal = read({"stage": "Engaging", "product": "GTX Mega", "account": "Newco", "owner": "Ann Lee"}, quirks)
    without = read({"stage": "Prospecting"}, quirks)

    assert (deal.product, deal.account.name, deal.team, deal.office) == ("GTX Mega", "Newco", "imported", "")
    assert without.account is None and without.name == "1C1I7A6R"
    assert quirks.unlisted_products == {"GTX Mega"} and quirks.unlisted_accounts == {"newco"}
    assert quirks.owners_without_team == {"Ann Lee"} and quirks.without_account == 1


def test_a_location_that_names_a_country_gets_its_code_and_keeps_its_words():
    ref = reference()

    assert (ref.accounts["cancity"].country, ref.accounts["cancity"].location) == ("US", "United States")
    assert (ref.accounts["betatech"].country, ref.accounts["betatech"].location) == ("", "Philipines")


def test_the_header_stage_map_must_point_at_won_lost_or_a_stage():
    with pytest.raises(InvalidArgument) as bad:
        history.stage_map(PIPELINE, {"Engaging": "engaged", "Won": "won"})

    assert [v.field for v in bad.value.violations] == ["header.stage_map[Engaging]"]


def test_bad_reference_rows_name_their_field():
    with pytest.raises(history.RowRejected) as employees:
        history.account_row({"account": "Acme", "employees": "many"})
    with pytest.raises(history.RowRejected) as price:
        history.product_row({"product": "GTX", "price": "cheap"})

    assert (employees.value.field_name, price.value.field_name) == ("employees", "price")
