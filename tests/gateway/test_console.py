"""The web console in a real browser: the Playwright scenario in console/tests, driven by Node's test
runner against this platform's gateway. The rep the scenario logs in as is the only rep routing
knows here, so the lead the scenario submits lands in that rep's inbox.

Screenshots of the main pages land in build/screenshots (git-ignored); the README shows copies.
"""
import json
import os
import shutil
import subprocess

import pytest
from leadflow.routing.v1 import routing_pb2

from services.devstack.infrastructure import REPO

pytestmark = pytest.mark.e2e

CONSOLE = REPO / "console"
SCREENSHOTS = REPO / "build" / "screenshots"


def test_console_scenario_in_chromium(console):
    if not (CONSOLE / "node_modules" / "playwright-core").is_dir():
        pytest.fail("the console's npm packages are not installed: run `make console`", pytrace=False)
    if not shutil.which("node"):
        pytest.fail("Node.js is needed for the browser tests", pytrace=False)
    rep_id = "rep.one"
    with console.client("admin") as admin:
        admin.routing.PutRep(routing_pb2.PutRepRequest(rep=routing_pb2.Rep(
            rep_id=rep_id, name="Li Na", team="team-a", languages=["zh", "en"])))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    env = {**os.environ,
           "LEADFLOW_CONSOLE_URL": console.url,
           "LEADFLOW_TOKENS": json.dumps({who: console.tokens[who] for who in ("admin", "manager", "rep")}),
           "LEADFLOW_REP_ID": rep_id,
           "LEADFLOW_SCREENSHOTS": str(SCREENSHOTS)}
    run = subprocess.run(["node", "--test", "--test-reporter=spec", "tests/"], cwd=CONSOLE, env=env,
                         capture_output=True, text=True, timeout=280)
    report = run.stdout + run.stderr
    print(report)
    assert run.returncode == 0, f"browser scenario failed:\n{report[-6000:]}"
    assert (SCREENSHOTS / "inbox.png").exists(), "the scenario saved no screenshot of the inbox"
