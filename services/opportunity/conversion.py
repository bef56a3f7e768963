"""Converting a qualified lead: the account (matched by web domain, else by name), the contact
(matched by email) and the opportunity it becomes. Pure: the service matches and stores."""
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import pycountry
from email_validator import EmailNotValidError, validate_email

from services.common.errors import Validator
from services.common.money import checked_amount, checked_currency
from services.opportunity.domain import PRINCIPAL_ID

DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


@dataclass(frozen=True)
class AccountInput:
    name: str
    domain: str = ""
    industry: str = ""
    country: str = ""


@dataclass(frozen=True)
class ContactInput:
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    phone: str = ""
    title: str = ""


@dataclass(frozen=True)
class OpportunityInput:
    name: str
    pipeline_id: str = "new-business"
    amount: str = ""  # decimal text, so money never passes through a float
    currency: str = ""
    close_date: date | None = None
    owner_id: str = ""  # empty: the lead's owner
    team: str = ""  # the owner's team when it is another (an AE's); empty: the lead's team


@dataclass(frozen=True)
class Conversion:
    """A checked conversion request with its matching keys."""

    account: AccountInput
    contact: ContactInput
    opportunity: OpportunityInput
    account_key: str
    contact_key: str
    amount: Decimal | None = None
    extra: dict = field(default_factory=dict)


def account_key(account: AccountInput) -> str:
    """The same company, however it is written: its web domain, else its name without case or spacing."""
    if account.domain:
        return f"domain:{account.domain}"
    return "name:" + " ".join(account.name.lower().split())


def validate_conversion(account: AccountInput, contact: ContactInput, opportunity: OpportunityInput,
                        today: date) -> Conversion:
    check = Validator()
    name = account.name.strip()
    if check.required(name, "account.name"):
        check.max_length(name, 200, "account.name")
    domain = account.domain.strip().lower().removeprefix("www.")
    if domain:
        check.check(bool(DOMAIN.match(domain)), "account.domain", "must be a web domain, e.g. acme.com")
    country = account.country.strip()
    if country:
        try:
            country = pycountry.countries.lookup(country).alpha_2
        except LookupError:
            check.check(False, "account.country", f"unknown country {country!r}")
    email = contact.email.strip()
    if email:
        try:
            email = validate_email(email, check_deliverability=False).normalized.lower()
        except EmailNotValidError as error:
            check.check(False, "contact.email", f"is not a valid email address: {error}")
    check.check(bool(email or contact.first_name.strip() or contact.last_name.strip()), "contact",
                "needs an email or a name")
    title = opportunity.name.strip()
    if check.required(title, "opportunity.name"):
        check.max_length(title, 200, "opportunity.name")
    amount = checked_amount(check, opportunity.amount, "opportunity.amount")
    currency = opportunity.currency.strip().upper()
    if currency or amount is not None:
        checked_currency(check, currency, "opportunity.currency")
    if opportunity.close_date is not None:
        check.check(opportunity.close_date >= today, "opportunity.close_date", "must not be in the past")
    for value, where in ((opportunity.owner_id.strip(), "opportunity.owner_id"),
                         (opportunity.team.strip(), "opportunity.team")):
        if value:
            check.check(bool(PRINCIPAL_ID.match(value)), where, "1-64 letters, digits, '.', '_' or '-'")
    check.raise_if_invalid()
    account = AccountInput(name, domain, account.industry.strip().lower(), country)
    contact = ContactInput(contact.first_name.strip(), contact.last_name.strip(), email, contact.phone.strip(),
                           contact.title.strip())
    opportunity = OpportunityInput(title, opportunity.pipeline_id.strip() or "new-business",
                                   str(amount) if amount is not None else "", currency, opportunity.close_date,
                                   opportunity.owner_id.strip(), opportunity.team.strip())
    contact_key = f"email:{email}" if email else ""
    return Conversion(account, contact, opportunity, account_key(account), contact_key, amount)
