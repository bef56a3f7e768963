"""Finding a lead again without an exact key: fuzzy matching on name and company, and the search
terms that make leads findable by the first letters of a word.

Exact identities (email, phone, external id) are handled by contact keys; this module covers the
person who writes "Anna Schmidt, ACME GmbH" on one form and "anna schmid, Acme" on another.
"""
import re
import unicodedata
from dataclasses import dataclass

import phonenumbers
from rapidfuzz import fuzz

# At or above this score a capture is the same person and merges; between the two thresholds the lead
# is created and flagged so a person decides (MergeLeads). Names alone are never enough: the score
# weighs the company, and a lead without a company is never matched fuzzily.
MERGE_THRESHOLD = 92.0
POSSIBLE_DUPLICATE_THRESHOLD = 75.0
NAME_WEIGHT = 0.6
COMPANY_WEIGHT = 0.4
MAX_CANDIDATES = 50

# Legal forms say nothing about which company it is: "ACME GmbH" and "Acme" are the same company.
_LEGAL_FORMS = re.compile(
    r"\b(inc|incorporated|ltd|limited|llc|llp|gmbh|ag|sa|sas|sarl|bv|nv|plc|co|corp|corporation|company|"
    r"pte|pty|kg|oy|ab|as|spa|srl)\b\.?", re.IGNORECASE)
_CJK_LEGAL_FORMS = re.compile(r"(股份有限公司|有限责任公司|有限公司|集团|公司)$")
_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)
_WORD = re.compile(r"\w+", re.UNICODE)
_CJK = re.compile(r"[\u3400-\u9fff]")
# Every indexed term costs each insert, so words are findable from their first three letters.
MIN_PREFIX = 3
MAX_PREFIX = 10


def _fold(text: str) -> str:
    """Lower-case without accents: "Müller" and "Muller" compare equal."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def company_key(company: str) -> str:
    """A company name reduced to what identifies it."""
    name = _CJK_LEGAL_FORMS.sub("", company.strip())
    name = _LEGAL_FORMS.sub(" ", _fold(name))
    return _NON_WORD.sub(" ", name).strip()


def full_name(lead) -> str:
    return _fold(f"{lead.first_name} {lead.last_name}").strip()


def _name_initial(lead) -> str:
    """First letter of the family name (or of the given name when that is all there is): a typo is
    tolerated anywhere but there, and it keeps a big company's other people out of the candidates."""
    name = _fold(lead.last_name).strip() or _fold(lead.first_name).strip()
    return name[:1]


def match_keys(lead) -> list[str]:
    """Keys under which fuzzy candidates for this lead are looked up: company domain or company name,
    each with the name's initial. A lead without a name or without a company cannot be matched fuzzily."""
    initial = _name_initial(lead)
    if not initial:
        return []
    keys = []
    if lead.company_domain:
        keys.append(f"domain:{lead.company_domain}:{initial}")
    key = company_key(lead.company)
    if key:
        keys.append(f"company:{key}:{initial}")
    return keys


@dataclass(frozen=True)
class Match:
    lead_id: str
    score: float


def similarity(incoming, candidate) -> float:
    """0-100: how surely two leads are the same person, from their names and companies."""
    name_a, name_b = full_name(incoming), full_name(candidate)
    if not name_a or not name_b:
        return 0.0
    name_score = fuzz.token_sort_ratio(name_a, name_b)
    if incoming.company_domain and incoming.company_domain == candidate.company_domain:
        company_score = 100.0
    else:
        company_a, company_b = company_key(incoming.company), company_key(candidate.company)
        company_score = fuzz.token_sort_ratio(company_a, company_b) if company_a and company_b else 0.0
    return round(NAME_WEIGHT * name_score + COMPANY_WEIGHT * company_score, 1)


def best_matches(incoming, candidates) -> list[Match]:
    """Candidates at or above the possible-duplicate threshold, best first. Two leads with different
    emails are different people however alike their names are, so they only ever become possible
    duplicates, never a merge."""
    matches = []
    for candidate in candidates:
        if candidate.lead_id == incoming.lead_id or candidate.merged_into:
            continue
        score = similarity(incoming, candidate)
        if incoming.email and candidate.email and incoming.email != candidate.email:
            score = min(score, MERGE_THRESHOLD - 0.1)
        if score >= POSSIBLE_DUPLICATE_THRESHOLD:
            matches.append(Match(candidate.lead_id, score))
    return sorted(matches, key=lambda match: (-match.score, match.lead_id))


def _prefixes(word: str) -> list[str]:
    """The word's prefixes from MIN_PREFIX to MAX_PREFIX letters, and the word itself (even a short one)."""
    return [word[:length] for length in range(MIN_PREFIX, min(len(word), MAX_PREFIX) + 1)] + [word]


def search_terms(lead) -> list[str]:
    """Every prefix (3-10 characters) of every word of the lead's names, company (without its legal
    form) and city; the email, its local part and its domain whole; and the phone as dialled
    internationally, nationally or by its last four digits. So "ann", "schm", "acme",
    "13800138000" find the lead with an exact index lookup (the store has no text index). Each term
    costs every insert, which is why titles and email fragments are not terms. Han characters each
    count as a word, and the whole Chinese name is a term too."""
    words = set()
    for text in (lead.first_name, lead.last_name, company_key(lead.company) or lead.company, lead.city):
        for word in _WORD.findall(_fold(text)):
            if _CJK.search(word):
                words.update(_CJK.findall(word))
                words.add(word)
            else:
                words.update(_prefixes(word))
    if lead.email:
        local, _, domain = lead.email.partition("@")
        words.update((lead.email, local, domain))
    if lead.phone_e164:
        digits = lead.phone_e164.lstrip("+")
        words.update((digits, digits[-4:], str(phonenumbers.parse(lead.phone_e164).national_number)))
    if lead.external_id:
        words.add(lead.external_id.lower())
    chinese_name = f"{lead.last_name}{lead.first_name}"
    if _CJK.search(chinese_name):
        words.add(chinese_name)
    return sorted(words)


def query_words(text: str) -> list[str]:
    """The words of a search box entry as search terms: folded, prefixes capped like the index."""
    words = []
    for raw in text.split():
        word = _fold(raw).strip(".,;:")
        if word.startswith("+"):
            word = word.lstrip("+")
        word = word.replace("-", "").replace("(", "").replace(")", "") if word[:1].isdigit() else word
        if "@" not in word and len(word) > MAX_PREFIX and not word.isdigit():
            word = word[:MAX_PREFIX]
        if word:
            words.append(word)
    return words[:8]
