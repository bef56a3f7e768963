"""Money as every service takes it in: a decimal amount (never a float) and an ISO 4217 currency."""
from decimal import Decimal, InvalidOperation

import pycountry

from services.common.errors import Validator

MAX_AMOUNT = Decimal("1e12")


def checked_amount(check: Validator, text: str, where: str) -> Decimal | None:
    """Money as a decimal (never a float): non-negative, below 10^12; None when not given."""
    if not text.strip():
        return None
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        check.check(False, where, "must be a decimal number, e.g. 12500.00")
        return None
    if check.check(amount.is_finite() and Decimal(0) <= amount < MAX_AMOUNT, where,
                   "must be a non-negative amount below 10^12"):
        return amount
    return None


def checked_currency(check: Validator, code: str, where: str) -> str:
    code = code.strip().upper()
    check.check(bool(code) and pycountry.currencies.get(alpha_3=code) is not None, where,
                "must be an ISO 4217 code such as CNY, EUR or USD")
    return code
