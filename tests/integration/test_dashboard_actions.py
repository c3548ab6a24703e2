"""The dashboard's job table API, timelines and Cancel/Retry actions against a real cluster, read with a
plain HTTP client; then the page as a user drives it in headless Chromium, during a running DAG."""

from __future__ import annotations

import json
import os

import pytest

from titan_sdk import TitanJob
from tests.conftest import wait_until
from tests.integration.test_dashboard import (CHROMIUM, CHROMIUM_ARGS, STATE_TIMEOUT_MS, dashboard, get, node, request,  # noqa: F401 (dashboard: a fixture)
                                              save_screenshot)


def jobs(url: str, query: str = "") -> dict:
    return json.loads(get(url + "api/jobs" + (f"?{query}" if query else "")))


def act(dashboard, path: str, token: bool = True) -> tuple:
    headers = {"Content-Type": "application/json", **({"X-Titan-Token": dashboard.token} if token else {})}
    return request(dashboard + path, "POST", b"{}", headers)


def test_job_table_timeline_and_retry_through_the_api(client, dashboard, script, tmp_path):
    marker = tmp_path / "second-try"
    flaky = script("flaky.py", f"""
        import os, sys
        if not os.path.exists({str(marker)!r}):
            open({str(marker)!r}, "w").close()
            sys.exit(4)
        print("fine now")
        """)
    ok = script("ok.py", "print('ok')")
    client.submit_dag("tabled", [TitanJob("setup", ok), TitanJob("flaky", flaky, parents=["setup"]),
                                 TitanJob("report", ok, parents=["flaky"])])
    assert client.wait(["setup", "flaky", "report"], timeout=30) == \
        {"setup": "COMPLETED", "flaky": "FAILED", "report": "CANCELLED"}
    failed = wait_until(lambda: jobs(dashboard, "state=FAILED&dag=tabled")["jobs"], what="flaky in the table")
    (entry,) = failed
    assert entry["job_id"] == "flaky" and entry["exit_code"] == 4 and entry["worker"] in ("cpu-1", "gpu-1")
    assert len(entry["attempts"]) == 1 and entry["attempts"][0]["ended_at"] >= entry["attempts"][0]["started_at"]
    assert entry["submitted_at"] <= entry["started_at"] and entry["run_seconds"] >= 0
    assert [j["job_id"] for j in jobs(dashboard, "q=EXIT%20code%204")["jobs"]] == ["flaky"]
    assert [j["job_id"] for j in jobs(dashboard, "q=flaky")["jobs"]] == ["report", "flaky"], "report's reason names it"
    first = jobs(dashboard, "limit=1&dag=tabled")
    assert len(first["jobs"]) == 1 and first["next_cursor"]
    rest = jobs(dashboard, f"limit=5&dag=tabled&cursor={first['next_cursor']}")
    assert {j["job_id"] for j in first["jobs"] + rest["jobs"]} == {"setup", "flaky", "report"}

    status, answer = act(dashboard, "api/dags/tabled/retry", token=False)
    assert status == 403 and "token" in answer["error"]
    status, answer = act(dashboard, "api/jobs/setup/retry")
    assert status == 409 and "only a FAILED or CANCELLED job" in answer["error"]
    status, answer = act(dashboard, "api/dags/tabled/retry")
    assert status == 200 and answer["dag"] == "tabled", answer
    assert client.wait(["flaky", "report"], timeout=30) == {"flaky": "COMPLETED", "report": "COMPLETED"}
    timeline = json.loads(get(dashboard + "api/timeline?dag=tabled"))   # the master's record: no lag
    runs = [(job["job_id"], job["state"], job["run"]) for job in timeline["jobs"]]
    assert ("flaky", "FAILED", "tabled#1") in runs and ("flaky", "COMPLETED", "tabled#1") in runs, \
        "the earlier run stays in the timeline; the retry takes its place in the DAG's run"
    assert ("report", "COMPLETED", "tabled#1") in runs and len(runs) == 5
    assert status == 200


def test_cancel_a_job_and_a_dag_and_bad_queries(client, dashboard, script):
    sleeper = script("sleeper.py", "import time\ntime.sleep(120)\n")
    client.submit_dag("long", [TitanJob("nap", sleeper), TitanJob("after-nap", sleeper, parents=["nap"])])
    client.submit_job(TitanJob("alone", sleeper))
    wait_until(lambda: client.get_job_status("alone") == "RUNNING", what="alone RUNNING")
    status, answer = act(dashboard, "api/jobs/alone/cancel")
    assert (status, answer) == (200, {"job_id": "alone", "state": "CANCELLED"})
    status, answer = act(dashboard, "api/dags/long/cancel")
    assert status == 200 and {j["state"] for j in answer["jobs"]} == {"CANCELLED"}
    status, answer = act(dashboard, "api/jobs/nobody/cancel")
    assert status == 404 and "nobody" in answer["error"]
    status, answer = act(dashboard, "api/jobs/alone/explode")
    assert status == 404 and "/api/jobs/JOB/cancel" in answer["error"]
    for query, named in (("state=done", "state must be one of"), ("limit=501", "limit must be"),
                         ("since=soon", "since must be")):
        status, answer = request(dashboard + f"api/jobs?{query}")
        assert status == 400 and named in answer["error"], (query, answer)
    status, answer = request(dashboard + "api/timeline")
    assert status == 400 and "?dag=NAME" in answer["error"]


# ----------------------------------------------------------------- the page in a real browser


@pytest.mark.timeout(300)
@pytest.mark.skipif(not os.path.exists(CHROMIUM),
                    reason=f"needs Debian's chromium at {CHROMIUM}: apt-get install -y chromium")
def test_a_user_clicks_a_job_reads_logs_cancels_approves_and_follows_links(client, dashboard, script, tmp_path):
    # Playwright drives Debian's chromium (executable_path) over the DevTools protocol; it downloads nothing.
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright: pip install -e '.[test]'")
    release = tmp_path / "release"
    waiter = script("waiter.py", f"""
        import os, time
        print('working on it', flush=True)
        while not os.path.exists({str(release)!r}):
            time.sleep(0.05)
        """)
    ok = script("ok.py", "print('ok')")
    crash = script("crash.py", "raise SystemExit('disk on fire')")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("dialog", lambda dialog: dialog.accept())     # "Cancel job ...? Running work is killed."
            client.submit_dag("live", [TitanJob("worker-bee", waiter), TitanJob("doomed", waiter),
                                       TitanJob("review", ok, parents=["worker-bee"], hitl_message="Ship it?"),
                                       TitanJob("ship", ok, parents=["review"]), TitanJob("crash", crash)])
            page.goto(dashboard.with_token)
            page.wait_for_selector('#master-status[data-up="true"]', timeout=STATE_TIMEOUT_MS)
            assert page.is_hidden("#log-panel"), "the job panel stays closed until a job is clicked"
            read_logs_of_a_running_job(page)
            cancel_a_running_job(client, page)
            release.write_text("go")
            approve_the_gate(client, page)
            failure_reason_on_the_node(page)
            host_figures_and_big_dags(client, page, ok)
            job_table_and_permalinks(page, dashboard)
            save_screenshot(page, tmp_path)
            assert errors == [], errors
        finally:
            browser.close()


def read_logs_of_a_running_job(page) -> None:
    page.click(node("live", "worker-bee", "RUNNING"), timeout=STATE_TIMEOUT_MS)
    page.wait_for_function("document.querySelector('#log-text').textContent.includes('working on it')",
                           timeout=STATE_TIMEOUT_MS)
    assert page.is_visible("#log-panel") and page.get_attribute("#log-panel", "data-job-id") == "worker-bee"
    assert "#job=worker-bee" in page.url, "the panel's job is in the address: a permalink"
    page.click("#log-close")
    page.wait_for_selector("#log-panel", state="hidden", timeout=STATE_TIMEOUT_MS)


def cancel_a_running_job(client, page) -> None:
    page.click(node("live", "doomed", "RUNNING"), timeout=STATE_TIMEOUT_MS)
    page.wait_for_selector("#job-cancel:not([disabled])", timeout=STATE_TIMEOUT_MS)
    page.click("#job-cancel")
    page.wait_for_selector(node("live", "doomed", "CANCELLED"), timeout=STATE_TIMEOUT_MS)
    assert client.get_job_status("doomed") == "CANCELLED"
    page.wait_for_selector("#job-retry:not([disabled])", timeout=STATE_TIMEOUT_MS)
    assert "cancelled by request" in page.text_content("#log-reason")
    page.click("#log-close")


def approve_the_gate(client, page) -> None:
    page.click('button[data-action="approve"][data-gate-id="hitl-gate-review"]', timeout=STATE_TIMEOUT_MS)
    page.wait_for_selector(node("live", "ship", "COMPLETED"), timeout=STATE_TIMEOUT_MS)
    assert client.get_job_status("ship") == "COMPLETED"


def failure_reason_on_the_node(page) -> None:
    failed = page.wait_for_selector(node("live", "crash", "FAILED") + " .reason", timeout=STATE_TIMEOUT_MS)
    assert "disk on fire" in failed.text_content() or "exit code 1" in failed.text_content()


def host_figures_and_big_dags(client, page, ok: str) -> None:
    page.wait_for_selector('.worker[data-worker="cpu-1"] [data-meter="cpu"]', timeout=STATE_TIMEOUT_MS)
    assert "mem" in page.text_content('.worker[data-worker="cpu-1"] [data-meter="memory"]')
    client.submit_dag("fan", [TitanJob("root", ok)] + [TitanJob(f"leaf-{i}", ok, parents=["root"]) for i in range(300)])
    card = '.dag-card[data-dag="fan"]'
    page.wait_for_selector(f'{card}[data-jobs="301"]', timeout=STATE_TIMEOUT_MS)
    counts = page.eval_on_selector_all(f"{card} .group-node", "nodes => nodes.map(n => Number(n.dataset.count))")
    assert sum(counts) == 300 and len(counts) <= 7, counts
    height = page.eval_on_selector(f"{card} .graph", "graph => graph.getBoundingClientRect().height")
    assert height < 900, f"the grouped fan-out is {height}px tall"
    page.click(f'{card} button[data-action="expand"]')
    page.wait_for_function(f"document.querySelectorAll('{card} .job-node').length === 301", timeout=STATE_TIMEOUT_MS)
    height = page.eval_on_selector(f"{card} .graph", "graph => graph.getBoundingClientRect().height")
    assert height <= 0.7 * 900 + 1, f"every node drawn, the graph scrolls in its card ({height}px)"


def job_table_and_permalinks(page, dashboard) -> None:
    page.click('[data-tab="jobs"]')
    page.select_option('#job-filters select[name="state"]', "CANCELLED")
    page.wait_for_selector('#job-rows tr[data-job-id="doomed"]', timeout=STATE_TIMEOUT_MS)
    states = page.eval_on_selector_all("#job-rows tr", "rows => rows.map(r => r.dataset.state)")
    assert set(states) == {"CANCELLED"}, states
    page.goto(dashboard + "#dag=live")
    page.wait_for_selector('.dag-card.linked[data-dag="live"] .timeline .gantt-row[data-job-id="ship"]',
                           timeout=STATE_TIMEOUT_MS)
    page.goto(dashboard + "#job=crash")
    page.wait_for_selector('#log-panel[data-job-id="crash"]', timeout=STATE_TIMEOUT_MS)
    page.wait_for_function("document.querySelector('#log-text').textContent.includes('disk on fire')",
                           timeout=STATE_TIMEOUT_MS)
