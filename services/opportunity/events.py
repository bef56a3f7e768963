"""Events opportunity emits."""
from services.common.events import iso

LEAD_CONTACTED = "lead_contacted"
CONFIG_CHANGED = "config_changed"
LEAD_CONVERTED = "lead_converted"
ACTIVITY_LOGGED = "activity_logged"
VERDICT_EVENTS = {"qualified": "lead_sales_qualified", "disqualified": "lead_sales_disqualified",
                  "recycle": "lead_recycled"}
OPPORTUNITY_STAGE_CHANGED = "opportunity_stage_changed"
OPPORTUNITY_WON = "opportunity_won"
OPPORTUNITY_LOST = "opportunity_lost"
OPPORTUNITY_IMPORTED = "opportunity_imported"
OPPORTUNITY_UPDATED = "opportunity_updated"


def lead_contacted(activity, ownership):
    return LEAD_CONTACTED, {"lead_id": activity.lead_id, "rep_id": ownership.rep_id}, {
        "activity_id": activity.activity_id, "activity_type": activity.type.value,
        "contacted_at": iso(activity.occurred_at), "team": ownership.team}


def pipeline_changed(pipeline_id: str, version: int, changed_by: str):
    return CONFIG_CHANGED, {"config_id": f"Pipeline:{pipeline_id}"}, {
        "kind": "Pipeline", "version": f"{pipeline_id}@{version}", "changed_by": changed_by}


def lead_converted(opportunity, rep_id: str):
    """``rep_id`` is the lead's owner, whose desk the lead leaves (routing frees their capacity);
    ``owner_id`` the opportunity's, a different person when an SDR hands off to an AE."""
    return LEAD_CONVERTED, {"lead_id": opportunity.lead_id, "opportunity_id": opportunity.id}, {
        **_snapshot(opportunity), "rep_id": rep_id, "handed_off": rep_id != opportunity.owner_id,
        "contact_id": opportunity.contact_id, "converted_at": iso(opportunity.created_at)}


def updated(opportunity, changed: list):
    """Amount, close date, probability or next step changed: the forecast moves with them."""
    return OPPORTUNITY_UPDATED, _subjects(opportunity), {
        **_snapshot(opportunity), "changed": changed,
        "probability_override": opportunity.probability_override}


def _subjects(opportunity) -> dict:
    """An opportunity's events name its lead too, when it has one (imported history has none)."""
    if opportunity.lead_id:
        return {"opportunity_id": opportunity.id, "lead_id": opportunity.lead_id}
    return {"opportunity_id": opportunity.id}


def current(opportunity) -> dict:
    """The snapshot as the opportunity stands now (after a change that built its events earlier)."""
    return _snapshot(opportunity)


def _snapshot(opportunity) -> dict:
    """What reporting needs about an opportunity, carried by each of its events; ``version`` orders
    them, so a projection keeps the newest whichever arrives last."""
    return {"owner_id": opportunity.owner_id, "team": opportunity.team, "manager_id": opportunity.manager_id,
            "office": opportunity.office, "account_id": opportunity.account_id,
            "account_name": opportunity.account_name, "product": opportunity.product,
            "pipeline_id": opportunity.pipeline_id, "stage_id": opportunity.stage_id, "status": opportunity.status,
            "amount": opportunity.amount, "currency": opportunity.currency, "close_date": opportunity.close_date,
            "probability": opportunity.probability, "forecast_category": opportunity.forecast_category,
            "engaged_at": iso(opportunity.engaged_at or opportunity.created_at),
            "closed_at": iso(opportunity.closed_at) if opportunity.closed_at else "",
            "lost_reason": opportunity.lost_reason, "version": opportunity.version}


def stage_changed(opportunity, from_stage: str, at, by: str):
    return OPPORTUNITY_STAGE_CHANGED, _subjects(opportunity), {
        **_snapshot(opportunity), "from_stage": from_stage, "to_stage": opportunity.stage_id, "changed_at": iso(at),
        "changed_by": by}


def closed(opportunity):
    event_type = OPPORTUNITY_WON if opportunity.status == "won" else OPPORTUNITY_LOST
    return event_type, _subjects(opportunity), {
        **_snapshot(opportunity), "closed_from": opportunity.closed_from}


def imported(opportunity):
    """One deal of an imported history, whole: reporting and forecasting learn from the past."""
    return OPPORTUNITY_IMPORTED, _subjects(opportunity), {
        **_snapshot(opportunity), "external_id": opportunity.external_id,
        "imported_at": iso(opportunity.created_at)}


def activity_logged(activity, ownership):
    """Every logged activity, with the colleagues it mentions, for a notifier and the lead's timeline."""
    return ACTIVITY_LOGGED, {"lead_id": activity.lead_id, "activity_id": activity.activity_id}, {
        "activity_type": activity.type.value, "logged_by": activity.logged_by, "mentions": activity.mentions,
        "subject": activity.subject, "occurred_at": iso(activity.occurred_at), "rep_id": ownership.rep_id,
        "team": ownership.team}


def verdict(lead_id: str, ownership, recorded: dict, at, by: str):
    """``rep_id`` is the lead's owner: a disqualified or recycled lead leaves their desk."""
    return VERDICT_EVENTS[recorded["outcome"]], {"lead_id": lead_id}, {
        "rep_id": ownership.rep_id, "team": ownership.team, "reason": recorded["reason"],
        "recycle_on": recorded["recycle_on"], "answers": recorded["answers"], "qualified_at": iso(at),
        "qualified_by": by}
