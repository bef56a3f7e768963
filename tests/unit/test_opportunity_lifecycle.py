"""What a lead's qualification carries into its opportunity at conversion (pure)."""
from services.opportunity.lifecycle import qualification_from_verdict


def test_a_qualified_verdicts_answers_become_the_deals_qualification_facts():
    verdict = {"outcome": "qualified", "answers": {"budget": " EUR 50k ", "need": "200 seats", "timeline": "",
                                                   "colour": "red"}, "reason": "", "by": "rep.one"}
    assert qualification_from_verdict(verdict) == {"budget": "EUR 50k", "need": "200 seats"}
    assert qualification_from_verdict({**verdict, "outcome": "disqualified"}) == {}
    assert qualification_from_verdict(None) == {}
    assert qualification_from_verdict({}) == {}
