"""The operator's `leadflow` command line against the running platform."""
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import uuid

from leadflow.common.v1 import common_pb2
from leadflow.opportunity.v1 import opportunity_pb2

from services.common.event_catalogue import missing_keys, undeclared_keys
from services.common.webhook_signing import is_signed_by
from services.reporting.answers import VERIFIED
from tests.support import wait_until


def leadflow(platform, *args: str, who: str = "admin") -> subprocess.CompletedProcess:
    env = {**os.environ, "LEADFLOW_TOKEN": platform.tokens[who]}
    for service, address in platform.platform.addresses().items():
        env[f"LEADFLOW_{service.upper()}_ADDRESS"] = address
    return subprocess.run([sys.executable, "-m", "services.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_health_lists_every_service_as_serving(platform):
    result = leadflow(platform, "health")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["capture", "scoring", "routing", "opportunity", "reporting"]
    assert all(line.split()[-1] == "SERVING" for line in lines)


def test_submit_then_show_a_lead_with_its_score_and_assignment(platform, reps):
    submitted = leadflow(platform, "lead", "submit", "--email", "ceo@cli-robotics.example.com", "--title", "CEO",
                         "--company-size", "900", "--source", "referral", who="integration")
    assert submitted.returncode == 0, submitted.stderr
    lead_id = json.loads(submitted.stdout)["lead"]["lead_id"]

    def shown():
        view = json.loads(leadflow(platform, "lead", "show", lead_id).stdout)
        return view if view["assignment"] else None
    view = wait_until(shown, timeout=20)
    assert view["lead"]["email"] == "ceo@cli-robotics.example.com"
    assert view["score"]["qualified"] is True
    assert view["assignment"]["rep_id"] in reps


def test_refusals_are_reported_with_their_status_and_a_failing_exit_code(platform):
    bad = leadflow(platform, "lead", "submit", "--email", "not-an-email", "--source", "web", who="integration")
    assert bad.returncode == 2
    assert "INVALID_ARGUMENT" in bad.stderr and "lead.email" in bad.stderr
    # A rep reads their own numbers; someone else's are refused.
    forbidden = leadflow(platform, "report", "win-rate", "--owner", "somebody.else", who="rep")
    assert forbidden.returncode == 2 and "PERMISSION_DENIED" in forbidden.stderr


def test_import_a_file_then_find_its_leads(platform, tmp_path):
    batch = uuid.uuid4().hex[:8]
    export = tmp_path / "fair.csv"
    export.write_text("Name,E-mail,Company\r\n"
                      f"Wu Lei,wu.lei@{batch}.example.com,Jiangnan{batch} Machinery\r\n"
                      "Nobody,not-an-email,Nowhere\r\n", encoding="utf-8")
    imported = leadflow(platform, "lead", "import", str(export), "--source", "trade-fair", "--tag", "fair-2026")
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith("2 rows: 1 new, 0 merged, 0 unchanged, 1 rejected")
    assert "row 3 (E-mail): lead.email: is not a valid email address" in imported.stdout
    # Its progress, as the service reported it, ends with the last counts (a bar on a terminal).
    assert imported.stderr.splitlines()[-1] == "finished: 2 of about 2 rows read, 1 stored, 1 rejected"

    found = leadflow(platform, "lead", "search", f"jiangnan{batch}", "--tag", "fair-2026")
    assert found.returncode == 0 and f"wu.lei@{batch}.example.com" in found.stdout


SCORING_YAML = """\
kind: ScoringModel
spec:
  threshold: 50
  groups:
    - id: fit
      kind: fit
      criteria:
        - {id: big, points: 30, when: {field: company_size, gte: 500}}
    - id: web
      kind: engagement
      decay: {percent: 25, every_days: 30}
      criteria:
        - {id: demo, event: %s, points: 15}
"""


def test_config_apply_checks_a_scoring_model_and_names_each_mistake(platform, tmp_path):
    # Only --validate-only here: the other end-to-end tests run under the built-in model.
    good, bad = tmp_path / "scoring.yaml", tmp_path / "bad.yaml"
    good.write_text(SCORING_YAML % "demo_request", encoding="utf-8")
    bad.write_text(SCORING_YAML % "demo_requets", encoding="utf-8")

    checked = leadflow(platform, "config", "apply", "-f", str(good), "--validate-only")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == "ScoringModel: valid"
    refused = leadflow(platform, "config", "apply", "-f", str(bad))
    assert refused.returncode == 2 and "INVALID_ARGUMENT" in refused.stderr
    assert "groups[1].criteria[0].event" in refused.stderr and "demo_requets" in refused.stderr
    shown = leadflow(platform, "config", "get", "scoring-model")
    assert shown.returncode == 0 and shown.stdout.startswith("# builtin (live)")
    assert "kind: ScoringModel" in shown.stdout and "demo_request" in shown.stdout
    rep = leadflow(platform, "config", "apply", "-f", str(good), who="rep")
    assert rep.returncode == 2 and "PERMISSION_DENIED" in rep.stderr


ROUTING_YAML = """\
kind: RoutingPolicy
spec:
  rules:
    - id: dach
      when: {field: country, in: [DE, AT, CH]}
      team: dach
      strategy: %s
  escalation: {action: reassign, max_hops: 2}
"""


def test_config_apply_checks_a_routing_policy_and_reps_teams_and_the_queue_are_managed(platform, tmp_path):
    # Only --validate-only for the policy: the other end-to-end tests run under the built-in policy.
    good, bad = tmp_path / "routing.yaml", tmp_path / "bad.yaml"
    good.write_text(ROUTING_YAML % "least_loaded", encoding="utf-8")
    bad.write_text(ROUTING_YAML % "coin_flip", encoding="utf-8")

    checked = leadflow(platform, "config", "apply", "-f", str(good), "--validate-only")
    refused = leadflow(platform, "config", "apply", "-f", str(bad))
    shown = leadflow(platform, "config", "get", "routing-policy")
    team = leadflow(platform, "team", "put", "cli-team", "--name", "CLI team", "--manager", "cli.boss")
    rep = leadflow(platform, "rep", "put", "cli.boss", "--name", "Boss", "--team", "cli-team", "--paused",
                   "--territory", "DE", "--time-zone", "Europe/Berlin", "--hours", "mon=09:00-17:00")
    bad_rep = leadflow(platform, "rep", "put", "cli.x", "--name", "X", "--team", "cli-team", "--size", "huge")
    queue = leadflow(platform, "assignment", "queue")

    assert checked.returncode == 0 and checked.stdout.strip() == "RoutingPolicy: valid", checked.stderr
    assert refused.returncode == 2 and "rules[0].strategy" in refused.stderr
    assert shown.returncode == 0 and shown.stdout.startswith("# builtin (live)")
    assert "kind: RoutingPolicy" in shown.stdout and "weighted_round_robin" in shown.stdout
    assert team.returncode == 0 and "cli.boss" in team.stdout, team.stderr
    assert rep.returncode == 0 and "Europe/Berlin" in rep.stdout and "09:00-17:00" in rep.stdout, rep.stderr
    assert bad_rep.returncode == 2 and "rep.size_bands[0]" in bad_rep.stderr
    assert queue.returncode == 0, queue.stderr


PIPELINE_YAML = """\
kind: Pipeline
spec:
  id: partner
  name: Partner deals
  stages:
    - {id: registered, probability: 20, exit: {activities: [%s]}}
    - {id: approved, probability: 60, forecast: commit}
"""


def test_config_apply_checks_a_pipeline_and_shows_the_builtin_one(platform, tmp_path):
    good, bad = tmp_path / "pipeline.yaml", tmp_path / "bad.yaml"
    good.write_text(PIPELINE_YAML % "meeting", encoding="utf-8")
    bad.write_text(PIPELINE_YAML % "fax", encoding="utf-8")

    checked = leadflow(platform, "config", "apply", "-f", str(good), "--validate-only")
    refused = leadflow(platform, "config", "apply", "-f", str(bad))
    shown = leadflow(platform, "config", "get", "pipeline")

    assert checked.returncode == 0 and checked.stdout.strip() == "Pipeline partner: valid", checked.stderr
    assert refused.returncode == 2 and "stages[0].exit.activities[0]" in refused.stderr
    assert shown.returncode == 0 and shown.stdout.startswith("# new-business@0 (live)"), shown.stderr
    assert "kind: Pipeline" in shown.stdout and "negotiation" in shown.stdout


def test_import_a_sales_history_then_list_its_open_opportunities(platform, tmp_path):
    batch = uuid.uuid4().hex[:8]
    history, teams = tmp_path / "deals.csv", tmp_path / "teams.csv"
    history.write_text("Deal ID,Owner,Account,Stage,Created,Closed,Amount\r\n"
                       f"{batch}-1,Wu Lei,Jiangnan Machinery,Won,2026-01-05,2026-03-01,12000\r\n"
                       f"{batch}-2,Wu Lei,Jiangnan Machinery,Engaging,2026-09-01,,\r\n"
                       f"{batch}-3,Li Na,Nordlicht,Haggling,2026-09-01,,\r\n", encoding="utf-8")
    teams.write_text("Agent,Manager,Office\r\nWu Lei,Zhang Min,Shanghai\r\n", encoding="utf-8")

    imported = leadflow(platform, "opportunity", "import", str(history), "--sales-teams", str(teams),
                        "--currency", "CNY", "--id-prefix", f"{batch}:", "--stage", "Engaging=discovery")
    again = leadflow(platform, "opportunity", "import", str(history), "--currency", "CNY", "--id-prefix",
                     f"{batch}:", "--stage", "Engaging=discovery")
    listed = leadflow(platform, "opportunity", "list", "--owner", "wu.lei", "--stage", "discovery")

    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith("3 opportunity rows: 2 imported, 0 unchanged, 1 rejected"), imported.stdout
    assert "opportunities row 4 (Stage): 'Haggling' is not won, lost or a stage" in imported.stdout
    assert again.stdout.startswith("3 opportunity rows: 0 imported, 2 unchanged, 1 rejected"), again.stdout
    assert again.stderr.splitlines()[-1] == "finished: 3 of about 3 rows read, 2 stored, 1 rejected"
    assert listed.returncode == 0 and "discovery" in listed.stdout and "Jiangnan Machinery" in listed.stdout
    # Reporting learnt the history from the import's events: the operator reads it as CSV.
    def report():
        return leadflow(platform, "report", "win-rate", "--by", "owner", "--owner", "wu.lei", "--from", "2026-01-01",
                        "--to", "2026-12-31").stdout
    assert wait_until(lambda: "wu.lei,1,1,0,1.0,12000" in report(), timeout=30), report()
    assert report().splitlines()[0] == "key,closed,won,lost,win_rate,won_value"
    # After an upgrade an operator checks the roll-ups against the records, on everything stored so far
    # (asked again while the platform's last events may still be on their way).
    def verified():
        return leadflow(platform, "report", "verify", who="admin")
    result = wait_until(lambda: (run := verified()).returncode == 0 and run, timeout=60) or verified()
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(VERIFIED)} reports compared, 0 differences" in result.stdout, result.stdout


def test_events_tail_follows_a_lead_and_every_event_on_the_stream_is_in_the_catalogue(platform, reps):
    submitted = leadflow(platform, "lead", "submit", "--email", "cto@stream-robotics.example.com", "--title", "CTO",
                         "--company-size", "900", "--source", "referral", who="integration")
    assert submitted.returncode == 0, submitted.stderr
    lead_id = json.loads(submitted.stdout)["lead"]["lead_id"]

    def tail(*args: str) -> list[dict]:
        result = leadflow(platform, "events", "tail", "--from", "earliest", "--idle-exit", "2", *args,
                          who="integration")
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]

    def lead_events():
        found = tail("--subject", "lead", "--subject-id", lead_id)
        return found if "lead_assigned" in {line["event_type"] for line in found} else None
    followed = wait_until(lead_events, timeout=40)
    assert followed, "the lead's assignment never reached the event stream"
    assert followed[0]["event_type"] == "lead_captured"
    assert {"lead_scored", "lead_assigned"} <= {line["event_type"] for line in followed}
    assert {line["event"]["lead_id"] for line in followed} == {lead_id}
    positions = [line["position"] for line in followed]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)

    # Everything the platform emitted so far (leads, imports, history, rule changes) carries exactly
    # the fields the catalogue (GetEventTypes) declares for its type.
    everything = tail()
    assert len(everything) >= len(followed)
    drift = {(line["event_type"], frozenset(undeclared_keys(line["event"])), frozenset(missing_keys(line["event"])))
             for line in everything if undeclared_keys(line["event"]) or missing_keys(line["event"])}
    assert not drift, sorted(drift)
    # Resuming after a position repeats nothing before it.
    start = everything[-4]["position"]
    resumed = leadflow(platform, "events", "tail", "--from", str(start), "--limit", "3", who="integration")
    assert [json.loads(line)["position"] for line in resumed.stdout.splitlines()] == [start + 1, start + 2, start + 3]

    refused = leadflow(platform, "events", "tail", who="rep")
    assert refused.returncode == 2 and "PERMISSION_DENIED" in refused.stderr


def test_the_example_erp_client_mirrors_every_won_deal_across_a_cut_off_stream(platform, tmp_path):
    # Six open deals (an imported pipeline), then won one by one as reps would win them.
    batch = uuid.uuid4().hex[:8]
    history = tmp_path / "deals.csv"
    history.write_text("Deal ID,Owner,Account,Stage,Created,Closed,Amount\r\n" + "".join(
        f"{batch}-{n},Wu Lei,{batch} Account {n},Negotiation,2026-09-{n + 1:02d},,{1000 * (n + 1)}\r\n"
        for n in range(6)), encoding="utf-8")
    imported = leadflow(platform, "opportunity", "import", str(history), "--currency", "CNY", "--id-prefix",
                        f"{batch}:", "--stage", "Negotiation=negotiation")
    assert imported.returncode == 0, imported.stderr
    admin = platform.client("admin")
    open_deals = [o for o in admin.opportunity.ListOpportunities(opportunity_pb2.ListOpportunitiesRequest(
        owner_id="wu.lei", stage_id="negotiation", page=common_pb2.PageRequest(page_size=100))).opportunities
        if o.account_name.startswith(batch)]
    assert len(open_deals) == 6
    for deal in open_deals:
        admin.opportunity.CloseOpportunity(opportunity_pb2.CloseOpportunityRequest(
            opportunity_id=deal.opportunity_id, won=True, note="signed"))
    admin.close()

    def won_on_stream() -> dict:
        result = leadflow(platform, "events", "tail", "--from", "earliest", "--types", "opportunity_won",
                          "--idle-exit", "2", who="integration")
        return {line["event"]["opportunity_id"]: line["event"]["event_id"]
                for line in map(json.loads, result.stdout.splitlines())}
    mine = {deal.opportunity_id for deal in open_deals}
    ours = wait_until(lambda: (won := won_on_stream()) and mine <= set(won) and won, timeout=60)
    assert ours, "the wins never reached the event stream"

    mirror_file = tmp_path / "won-deals.jsonl"

    def run_mirror(*args: str) -> subprocess.CompletedProcess:
        # A process of its own, with nothing of Leadflow's on its path: only the contract.
        return subprocess.run([sys.executable, "examples/erp_mirror.py", "--address",
                               platform.platform.addresses()["reporting"], "--out", str(mirror_file), *args],
                              env={"PATH": os.environ["PATH"], "LEADFLOW_TOKEN": platform.tokens["integration"]},
                              capture_output=True, text=True, timeout=60)
    cut_off = run_mirror("--limit", "3")  # the connection "drops" after three events
    assert cut_off.returncode == 0, cut_off.stderr
    resumed = run_mirror("--run-seconds", "4")
    again = run_mirror("--run-seconds", "3")
    assert resumed.returncode == 0 and again.returncode == 0, resumed.stderr + again.stderr
    mirrored = [json.loads(line) for line in mirror_file.read_text().splitlines()]
    assert {deal["opportunity_id"] for deal in mirrored} == set(ours)  # none missing
    assert len(mirrored) == len({deal["event_id"] for deal in mirrored})  # none twice
    assert again.stdout.startswith("0 won deals added")
    ours_mirrored = sorted((deal for deal in mirrored if deal["opportunity_id"] in mine), key=lambda d: int(
        float(d["amount"])))
    assert [(int(float(deal["amount"])), deal["currency"], deal["account"]) for deal in ours_mirrored] == [
        (1000 * (n + 1), "CNY", f"{batch} Account {n}") for n in range(6)]


def test_a_webhook_subscription_made_with_the_cli_receives_a_new_lead_signed(platform, reps):
    received = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server hook
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hook_id = f"erp-{uuid.uuid4().hex[:6]}"
        made = leadflow(platform, "webhooks", "put", hook_id, "--url",
                        f"http://127.0.0.1:{server.server_address[1]}/events", "--types", "lead_assigned")
        assert made.returncode == 0, made.stderr
        secret = made.stdout.rsplit(": ", 1)[1].strip()
        submitted = leadflow(platform, "lead", "submit", "--email", "cfo@hooked-robotics.example.com", "--title",
                             "CFO", "--company-size", "900", "--source", "referral", who="integration")
        lead_id = json.loads(submitted.stdout)["lead"]["lead_id"]

        def ours():
            return [(headers, body) for headers, body in received if json.loads(body)["lead_id"] == lead_id]
        assert wait_until(ours, timeout=40), "the assignment never reached the webhook"
        [(headers, body)] = ours()
        event = json.loads(body)
        assert event["event_type"] == "lead_assigned" and event["rep_id"] in reps
        assert headers["X-Leadflow-Delivery"] == event["event_id"]
        assert is_signed_by(secret.encode(), headers["X-Leadflow-Timestamp"], body, headers["X-Leadflow-Signature"],
                            now=time.time())
        listed = leadflow(platform, "webhooks", "list")
        assert hook_id in listed.stdout and "dead letters 0" in listed.stdout
        assert leadflow(platform, "webhooks", "delete", hook_id).returncode == 0
    finally:
        server.shutdown()
