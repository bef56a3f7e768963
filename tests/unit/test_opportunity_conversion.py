"""services.opportunity.conversion: what a conversion request must hold, and how companies match."""
from datetime import date
from decimal import Decimal

import pytest

from services.common.errors import InvalidArgument
from services.opportunity.conversion import (AccountInput, ContactInput, OpportunityInput, account_key,
                                             validate_conversion)

TODAY = date(2026, 11, 29)


def convert(account=None, contact=None, opportunity=None):
    return validate_conversion(account or AccountInput("Acme"), contact or ContactInput(email="ann@acme.com"),
                               opportunity or OpportunityInput("Acme deal"), TODAY)


@pytest.mark.parametrize("account, key", [
    (AccountInput("Acme GmbH", "acme.de"), "domain:acme.de"),
    (AccountInput("  ACME   GmbH "), "name:acme gmbh"),
])
def test_accounts_match_by_domain_else_by_name_as_people_write_it(account, key):
    assert account_key(account) == key


def test_a_valid_request_is_cleaned_up():
    checked = convert(AccountInput(" Acme ", "WWW.Acme.com", "Software", "China"),
                      ContactInput(" Ann ", "", "Ann@Acme.COM"),
                      OpportunityInput(" Acme deal ", "", "1250.50", "cny", date(2027, 1, 31)))

    assert (checked.account.domain, checked.account.country, checked.account_key) == \
        ("acme.com", "CN", "domain:acme.com")
    assert (checked.contact.first_name, checked.contact_key) == ("Ann", "email:ann@acme.com")
    assert (checked.opportunity.pipeline_id, checked.opportunity.currency, checked.amount) == \
        ("new-business", "CNY", Decimal("1250.50"))


@pytest.mark.parametrize("opportunity, field", [
    (OpportunityInput("deal", amount="-5", currency="EUR"), "opportunity.amount"),
    (OpportunityInput("deal", amount="1e13", currency="EUR"), "opportunity.amount"),
    (OpportunityInput("deal", amount="NaN", currency="EUR"), "opportunity.amount"),
    (OpportunityInput("deal", amount="100"), "opportunity.currency"),
    (OpportunityInput("deal", amount="100", currency="EURO"), "opportunity.currency"),
    (OpportunityInput("deal", close_date=date(2026, 11, 28)), "opportunity.close_date"),
    (OpportunityInput("deal", owner_id="ae zhou"), "opportunity.owner_id"),
    (OpportunityInput("deal", team="sales team!"), "opportunity.team"),
    (OpportunityInput(""), "opportunity.name"),
])
def test_bad_opportunity_fields_are_named(opportunity, field):
    with pytest.raises(InvalidArgument) as raised:
        convert(opportunity=opportunity)
    assert [v.field for v in raised.value.violations] == [field]


def test_a_contact_needs_an_email_or_a_name():
    with pytest.raises(InvalidArgument) as raised:
        convert(contact=ContactInput(phone="+49 40 1234567"))
    assert [v.field for v in raised.value.violations] == ["contact"]
    assert convert(contact=ContactInput(last_name="Keller")).contact_key == ""
