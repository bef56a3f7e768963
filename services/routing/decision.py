"""Who gets a lead, decided as a pure function of the lead, the policy, the reps and the shared
state (open leads per rep, rotation counters), so that every case is a row in a table test.

The service reads the shared state from Redis under one lock, calls ``decide``, and writes the new
rotation back before releasing it: replicas take turns as if they were one process.
"""
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from services.routing.calendar import add_business_time
from services.routing.domain import Considered, Rep, RepStatus
from services.routing.policy import LEAST_LOADED, STICKY, WEIGHTED_ROUND_ROBIN, Rule, RoutingPolicy


@dataclass(frozen=True)
class Decision:
    rep_id: str  # "" when the lead goes to the fallback queue
    team: str
    rule_id: str
    strategy: str
    reason: str
    considered: tuple  # Considered, every rep looked at under every rule tried
    pool: str = ""
    rotation: dict = field(default_factory=dict)  # the pool's new rotation counters (rep id -> current)
    sla_minutes: int = 0

    @property
    def queued(self) -> bool:
        return not self.rep_id


def account_key(lead: dict) -> str:
    """What makes two leads the same account for sticky routing: the company's web domain (free
    mail never counts, capture leaves it out), else the company name as people write it."""
    if lead.get("company_domain"):
        return f"domain:{lead['company_domain'].lower()}"
    company = " ".join(str(lead.get("company") or "").lower().split())
    return f"company:{company}" if company else ""


def _covers(rep: Rep, lead: dict, match: str) -> str:
    """Why the rep does not cover the lead on one attribute ("" when they do, or list nothing)."""
    if match == "territory" and rep.territories:
        places = [str(lead.get(name) or "").lower() for name in ("country", "region", "city")]
        if not set(places) & set(rep.territories):
            return f"territory does not cover {'/'.join(p for p in places if p) or 'an unknown place'}"
    if match == "industry" and rep.industries:
        industry = str(lead.get("industry") or "").lower()
        if industry not in rep.industries:
            return f"does not cover industry {industry or '(unknown)'}"
    if match == "company_size" and rep.size_bands:
        size = lead.get("company_size") or 0
        if not size or not any(band.covers(int(size)) for band in rep.size_bands):
            return f"does not cover company size {size or '(unknown)'}"
    if match == "language" and rep.languages:
        language = str((lead.get("custom_fields") or {}).get("language") or "").lower()
        if language not in rep.languages:
            return f"does not speak {language or 'the lead’s language (unknown)'}"
    return ""


def skip_reason(rep: Rep, lead: dict, rule: Rule, now: datetime, open_leads: int, excluded=()) -> str:
    """Why a rep cannot take this lead now, in words a manager reads; "" when they can."""
    if rep.rep_id in excluded:
        return "already had this lead"
    if rep.status == RepStatus.PAUSED:
        return "paused"
    if rep.is_away(now):
        note = f" ({rep.away_note})" if rep.away_note else ""
        return f"out of office until {rep.away_until.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC{note}"
    if rule.working_hours and not rep.is_working(now):
        return f"outside working hours ({rep.calendar.time_zone})"
    if rep.capacity and open_leads >= rep.capacity:
        return f"at capacity ({open_leads}/{rep.capacity} open leads)"
    for match in rule.match_rep:
        reason = _covers(rep, lead, match)
        if reason:
            return reason
    missing = [skill for skill in rule.skills if skill not in rep.skills]
    if missing:
        return f"lacks skill {', '.join(missing)}"
    return ""


def choose_smooth_weighted(eligible: list, currents: dict) -> tuple[Rep, dict]:
    """Smooth weighted round robin: every eligible rep gains its weight, the highest takes the lead
    and gives back the pool's total. Weights 2:1 give A, B, A, A, B, A... Reps that were skipped gain
    nothing meanwhile, so a rep back from holiday takes turns again without a burst of catch-up leads.
    Ties go to the lower rep id, so the choice is deterministic."""
    total = sum(rep.weight for rep in eligible)
    gained = {rep.rep_id: currents.get(rep.rep_id, 0) + rep.weight for rep in eligible}
    chosen = min(eligible, key=lambda rep: (-gained[rep.rep_id], rep.rep_id))
    gained[chosen.rep_id] -= total
    return chosen, gained


def _least_loaded(eligible: list, open_leads: dict, currents: dict) -> tuple[Rep, dict, str]:
    def load(rep):
        return open_leads.get(rep.rep_id, 0) / rep.weight
    lowest = min(load(rep) for rep in eligible)
    tied = [rep for rep in eligible if load(rep) == lowest]
    chosen, rotation = choose_smooth_weighted(tied, currents)
    count = open_leads.get(chosen.rep_id, 0)
    tie = f"; {len(tied)} reps tied, turns decide" if len(tied) > 1 else ""
    return chosen, rotation, f"fewest open leads for their weight ({count} open, weight {chosen.weight}){tie}"


def _choose(rule: Rule, eligible: list, open_leads: dict, currents: dict, sticky_owner: str):
    strategy, note = rule.strategy, ""
    if strategy == STICKY:
        owner = next((rep for rep in eligible if rep.rep_id == sticky_owner), None)
        if owner is not None:
            return owner, {}, STICKY, f"owns this account already ({sticky_owner})"
        note = f"account owner {sticky_owner} cannot take it; " if sticky_owner else "a new account; "
        strategy = rule.then
    if strategy == LEAST_LOADED:
        chosen, rotation, reason = _least_loaded(eligible, open_leads, currents)
        return chosen, rotation, LEAST_LOADED, note + reason
    chosen, rotation = choose_smooth_weighted(eligible, currents)
    share = f"weight {chosen.weight} of {sum(rep.weight for rep in eligible)}"
    return chosen, rotation, WEIGHTED_ROUND_ROBIN, \
        note + f"next in weighted turns among {len(eligible)} available reps ({share})"


def _pool(rule: Rule, reps: dict) -> tuple[list, list]:
    """The reps a rule draws from, and the names it lists that are not reps."""
    if rule.reps:
        return [reps[r] for r in rule.reps if r in reps], [r for r in rule.reps if r not in reps]
    members = [rep for rep in reps.values() if not rule.team or rep.team == rule.team]
    return sorted(members, key=lambda rep: rep.rep_id), []


def decide(lead: dict, score: dict, policy: RoutingPolicy, reps: dict, open_leads: dict, rotations: dict,
           sticky_owner: str, now: datetime, excluded=()) -> Decision:
    """The first matching rule with an eligible rep wins; a rule whose reps are all unavailable
    overflows to the next matching rule, then to the fallback team, then to the fallback queue.
    ``rotations`` maps a pool name to its counters; ``excluded`` are reps who already had the lead."""
    considered, tried = [], []
    matching = [rule for rule in policy.rules if rule.matches(lead, score)]
    fallback = policy.fallback_rule()
    for rule in matching + ([fallback] if fallback else []):
        members, unknown = _pool(rule, reps)
        considered.extend(Considered(rep_id, "not a rep", rule.rule_id) for rep_id in unknown)
        eligible = []
        for rep in members:
            reason = skip_reason(rep, lead, rule, now, open_leads.get(rep.rep_id, 0), excluded)
            considered.append(Considered(rep.rep_id, reason, rule.rule_id))
            if not reason:
                eligible.append(rep)
        if not eligible:
            tried.append(rule.rule_id)
            continue
        chosen, rotation, strategy, why = _choose(rule, eligible, open_leads, rotations.get(rule.pool, {}),
                                                  sticky_owner)
        overflow = f" (after {', '.join(tried)} had no available rep)" if tried else ""
        return Decision(chosen.rep_id, chosen.team, rule.rule_id, strategy, f"rule {rule.rule_id}: {why}{overflow}",
                        tuple(considered), rule.pool, rotation, policy.sla_minutes(rule))
    if not matching:
        why = "no rule matched the lead" + (" and the fallback team has no available rep" if fallback else "")
    else:
        why = f"no available rep under {', '.join(tried)}"
    return Decision("", "", matching[0].rule_id if matching else "", "", f"fallback queue: {why}", tuple(considered))


def deadline(start: datetime, minutes: float, rep: Rep, policy: RoutingPolicy) -> datetime:
    """``minutes`` of the rep's working time after ``start``: on their calendar and time zone, with
    the company's holidays added to theirs. A rep with no working hours set counts every minute."""
    if rep.calendar is None:
        return start + timedelta(minutes=minutes)
    calendar = rep.calendar
    if policy.holidays:
        calendar = type(calendar)(calendar.time_zone, calendar.hours, calendar.holidays | policy.holidays)
    return add_business_time(start, timedelta(minutes=minutes), calendar)


def sla_times(start: datetime, rep: Rep, policy: RoutingPolicy, minutes: int) -> tuple[datetime, datetime]:
    """(warn_at, due_at) of a first-response task."""
    return (deadline(start, minutes * policy.warning_percent / 100, rep, policy),
            deadline(start, minutes, rep, policy))


@dataclass(frozen=True)
class Escalation:
    action: str  # "reassign", "notify_manager" or "queue"
    hop: int  # the hop the next owner would be on


def escalation_for(policy: RoutingPolicy, hops_so_far: int) -> Escalation:
    """What a breached first response leads to: another rep while hops remain, else the queue."""
    if policy.escalation == "notify_manager":
        return Escalation("notify_manager", hops_so_far)
    if hops_so_far < policy.max_hops:
        return Escalation("reassign", hops_so_far + 1)
    return Escalation("queue", hops_so_far)
