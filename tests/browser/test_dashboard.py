# SPDX-License-Identifier: Apache-2.0
"""The dashboard in a real browser: headless Chromium over a real server holding tasks.

The server holds tasks in several states. Checks what a person sees (counts, a task's page, a
retry, a filter), basic accessibility (landmarks, labels, keyboard reachability, visible focus)
and who may use it. Screenshots go to ``target/browser-artifacts/``.

The tests share one seeded server and dashboard and run in file order: the retry tests come last
because they change the counts.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from conftest import Dashboard, cli, screenshot, start_dashboard, wait_until

# What the seed example stores, by queue and state.
EXPECTED = {
    ("EMAIL", "complete"): 3,
    ("EMAIL", "terminated"): 2,
    ("EMAIL", "expired"): 1,
    ("EMAIL", "retry"): 2,
    ("REPORTS", "new"): 3,
    ("REPORTS", "blocked"): 1,
}
PAGES = ["#/", "#/tasks", "#/schedules", "#/governors", "#/pools"]


def count_cell(page: Page, queue: str, state: str) -> str:
    """The overview's count of ``state`` tasks in ``queue``, as displayed."""
    cell = page.locator(f'#queues-table td[data-queue="{queue}"][data-state="{state}"]')
    return cell.inner_text().strip()


def open_page(page: Page, dashboard: Dashboard, fragment: str) -> None:
    """Opens a view and waits until it has rendered its heading."""
    page.goto(dashboard.url + fragment)
    expect(page.locator("main h1")).to_be_visible()


def test_overview_counts_match_the_store(page: Page, dashboard: Dashboard) -> None:
    """The overview's per-queue counts by state are the seeded ones."""
    open_page(page, dashboard, "#/")
    expect(page.locator("main h1")).to_have_text("Overview")
    for (queue, state), n in EXPECTED.items():
        assert count_cell(page, queue, state) == str(n), (queue, state)
    assert count_cell(page, "EMAIL", "total") == "8"
    assert count_cell(page, "REPORTS", "total") == "4"
    assert count_cell(page, "EMAIL", "new") == "0"
    expect(page.locator("#stat-total")).to_have_text("12")
    expect(page.locator("#stat-leader")).to_have_text("none")
    # The same numbers as the API, and a chart drawn inline.
    overview = dashboard.api("GET", "/api/overview")
    assert overview["totals"]["complete"] == 3
    expect(page.locator("svg#rates-chart polyline")).to_have_count(4)
    expect(page.locator("#live-status")).to_have_text("live")
    screenshot(page, "overview")


def test_a_count_links_to_the_filtered_tasks(page: Page, dashboard: Dashboard) -> None:
    """A count on the overview opens the tasks it counts."""
    open_page(page, dashboard, "#/")
    page.locator('#queues-table td[data-queue="EMAIL"][data-state="terminated"] a').click()
    expect(page.locator("main h1")).to_have_text("Tasks")
    expect(page.locator("#tasks-table tbody tr")).to_have_count(2)
    expect(page.get_by_label("State")).to_have_value("terminated")
    expect(page.get_by_label("Queue")).to_have_value("EMAIL")


def test_a_state_filter_narrows_the_table(page: Page, dashboard: Dashboard) -> None:
    """Choosing a state (then a type) narrows the tasks table; Clear widens it."""
    open_page(page, dashboard, "#/tasks")
    rows = page.locator("#tasks-table tbody tr")
    expect(rows).to_have_count(12)
    expect(page.locator("#tasks-summary")).to_have_text("Showing 1\u201312 of 12 matching tasks.")
    page.get_by_label("State").select_option("complete")
    expect(rows).to_have_count(3)
    for state in rows.evaluate_all("rows => rows.map(r => r.dataset.state)"):
        assert state == "complete"
    expect(page.locator("#tasks-summary")).to_have_text("Showing 1\u20133 of 3 matching tasks.")
    screenshot(page, "tasks-filtered")
    page.get_by_label("State").select_option("failed")
    expect(rows).to_have_count(3)  # 2 terminated + 1 expired
    page.get_by_label("Type").select_option("email:flaky")
    expect(rows).to_have_count(1)
    page.get_by_role("button", name="Clear").click()
    expect(rows).to_have_count(12)


def test_search_by_id_finds_one_task(
    page: Page, dashboard: Dashboard, seeded: dict[str, list[str]]
) -> None:
    """Searching by a task's id shows that task alone, linked to its page."""
    target = seeded["expired"][0]
    open_page(page, dashboard, "#/tasks")
    page.get_by_label("Search by id").fill(target)
    page.get_by_label("Search by id").press("Enter")
    rows = page.locator("#tasks-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", target)
    rows.first.get_by_role("link").click()
    expect(page.locator("#task-state")).to_have_text("expired")


def test_a_task_page_shows_payload_result_state_and_dependencies(
    page: Page, dashboard: Dashboard, seeded: dict[str, list[str]]
) -> None:
    """A task's page: pretty payload, result, state, last error, dependency links."""
    done = seeded["complete"][0]
    open_page(page, dashboard, f"#/task/{done}")
    expect(page.locator("#task-state")).to_have_text("complete")
    expect(page.locator("#task-type")).to_have_text("email:send")
    payload = json.loads(page.locator("#task-payload").inner_text())
    assert payload["to"].endswith("@example.net")
    assert payload["subject"] == "Welcome"
    assert "\n  " in page.locator("#task-payload").inner_text(), "pretty-printed"
    result = json.loads(page.locator("#task-result").inner_text())
    assert result["sent_to"] == payload["to"]
    expect(page.locator("#task-timeline li")).not_to_have_count(0)
    screenshot(page, "task-complete")

    terminated = seeded["terminated"][0]
    open_page(page, dashboard, f"#/task/{terminated}")
    expect(page.locator("#task-last-error")).to_contain_text("mailbox does not exist")

    # Dependencies are links to their tasks.
    blocked = seeded["blocked"][0]
    open_page(page, dashboard, f"#/task/{blocked}")
    expect(page.locator("#task-state")).to_have_text("blocked")
    dependency = page.locator("#task-dependencies a")
    expect(dependency).to_have_attribute("href", f"#/task/{done}")
    dependency.click()
    expect(page.locator("main h1")).to_contain_text(done)


def test_landmarks_labels_and_table_headers(page: Page, dashboard: Dashboard) -> None:
    """Every page: landmarks, a <label> per input, scoped headers, real buttons."""
    for fragment in PAGES:
        open_page(page, dashboard, fragment)
        expect(page.get_by_role("banner")).to_have_count(1)
        expect(page.get_by_role("navigation")).to_have_count(1)
        expect(page.get_by_role("main")).to_have_count(1)
        expect(page.locator("nav a[aria-current=page]")).to_have_count(1)
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('input, select, textarea')]
                .filter(el => el.type !== 'hidden' && el.labels.length === 0)
                .map(el => el.outerHTML)"""
        )
        assert unlabelled == [], f"{fragment}: inputs without a <label>: {unlabelled}"
        no_scope = page.evaluate(
            """() => [...document.querySelectorAll('th')]
                .filter(th => !th.hasAttribute('scope')).map(th => th.textContent)"""
        )
        assert no_scope == [], f"{fragment}: table headers without scope: {no_scope}"
        fake_buttons = page.evaluate(
            """() => [...document.querySelectorAll('[role=button], [onclick]')]
                .filter(el => el.tagName !== 'BUTTON').map(el => el.outerHTML)"""
        )
        assert fake_buttons == [], f"{fragment}: clickable non-buttons: {fake_buttons}"
        screenshot(page, "page-" + (fragment.strip("#/") or "overview"))


def test_a_schedule_is_added_and_removed(page: Page, dashboard: Dashboard) -> None:
    """The schedules form adds one; its Remove button (after confirmation) removes it."""
    open_page(page, dashboard, "#/schedules")
    page.get_by_label("Name").fill("nightly-report")
    page.get_by_label("Schedule (cron)").fill("@daily")
    page.get_by_label("Queue").fill("REPORTS")
    page.get_by_label("Task type").fill("report:build")
    page.get_by_label("Payload (JSON, optional)").fill('{"report": "nightly"}')
    page.get_by_role("button", name="Add schedule").click()
    row = page.locator("#schedules-table tbody tr", has_text="nightly-report")
    expect(row).to_have_count(1)
    expect(row).to_contain_text('{"report":"nightly"}')
    screenshot(page, "schedules")
    row.get_by_role("button", name="Remove schedule nightly-report").click()
    page.get_by_role("dialog").get_by_role("button", name="Remove").click()
    expect(row).to_have_count(0)
    assert dashboard.api("GET", "/api/schedules")["schedules"] == []


def tab_to(page: Page, element_id: str, limit: int = 40) -> list[str]:
    """Presses Tab until the element with ``element_id`` has focus; returns what was focused."""
    seen = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => document.activeElement.id || document.activeElement.textContent.trim()"
        )
        seen.append(focused)
        if focused == element_id:
            return seen
    pytest.fail(f"Tab never reached #{element_id}: {seen}")


def test_keyboard_reaches_the_actions_with_visible_focus(
    page: Page, dashboard: Dashboard, seeded: dict[str, list[str]]
) -> None:
    """Tab reaches the actions, their focus shows, Enter and Escape work."""
    open_page(page, dashboard, f"#/task/{seeded['complete'][1]}")
    tab_to(page, "action-retry")
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none"), "the focused button shows its focus"
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "action-delete"
    screenshot(page, "keyboard-focus")
    # Enter on the focused action opens the confirmation, Escape cancels it.
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(page.locator("#task-state")).to_have_text("complete")

    # On the overview, Tab reaches the purge buttons too.
    open_page(page, dashboard, "#/")
    seen = tab_to(page, "Purge…", limit=60)
    assert seen[-1] == "Purge…"


def test_clicking_retry_with_confirmation_changes_the_state(
    page: Page, dashboard: Dashboard, seeded: dict[str, list[str]]
) -> None:
    """Retry asks first; Cancel changes nothing, confirming makes it retry."""
    task_id = seeded["terminated"][0]
    open_page(page, dashboard, f"#/task/{task_id}")
    expect(page.locator("#task-state")).to_have_text("terminated")

    # Cancel changes nothing.
    page.get_by_role("button", name="Retry").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(task_id)
    screenshot(page, "retry-confirmation")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert dashboard.api("GET", f"/api/tasks/{task_id}")["state"] == "terminated"

    page.get_by_role("button", name="Retry").click()
    page.get_by_role("dialog").get_by_role("button", name="Retry").click()
    expect(page.locator("#task-state")).to_have_text("retry")
    expect(page.locator("#toast")).to_contain_text("is now retry")
    assert dashboard.api("GET", f"/api/tasks/{task_id}")["state"] == "retry"
    # The retry event joins the timeline.
    expect(page.locator("#task-timeline li.source-event")).to_contain_text("state retry")
    screenshot(page, "task-retried")

    open_page(page, dashboard, "#/")
    assert count_cell(page, "EMAIL", "terminated") == "1"
    assert count_cell(page, "EMAIL", "retry") == "3"


def test_the_overview_updates_live_from_events(
    page: Page, dashboard: Dashboard, seeded: dict[str, list[str]]
) -> None:
    """An open overview follows a change made elsewhere, from the events."""
    open_page(page, dashboard, "#/")
    expect(page.locator("#live-status")).to_have_text("live")
    expired = count_cell(page, "EMAIL", "expired")
    assert expired == "1"
    # Someone else retries the expired task: the open page follows without a reload.
    dashboard.api("POST", f"/api/tasks/{seeded['expired'][0]}/retry")
    wait_until("the overview to follow", lambda: count_cell(page, "EMAIL", "expired") == "0")
    assert count_cell(page, "EMAIL", "retry") == "4"
    screenshot(page, "overview-live")


def test_a_non_loopback_address_needs_a_token(nats_url: str) -> None:
    """Listening beyond loopback without a token is refused."""
    refused = subprocess.run(
        [cli(), "dashboard", "--server", nats_url, "--listen", "0.0.0.0:0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 2
    assert "without an access token" in refused.stderr


def test_with_a_token_every_request_needs_it(page: Page, nats_url: str) -> None:
    """With a token: 401 without it; ?token= once keeps the browser working."""
    secured = start_dashboard(nats_url, "--listen", "127.0.0.1:0", "--access-token", "s3cret")
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(secured.url + "api/overview", timeout=10)
        assert refused.value.code == 401
        bearer = urllib.request.Request(
            secured.url + "api/overview", headers={"Authorization": "Bearer s3cret"}
        )
        with urllib.request.urlopen(bearer, timeout=10) as reply:
            assert reply.status == 200
        # In the browser: without the token nothing, with ?token= once the page works.
        response = page.goto(secured.url)
        assert response is not None
        assert response.status == 401
        page.goto(secured.url + "?token=s3cret")
        assert "token" not in page.url, "the token is dropped from the address bar"
        expect(page.locator("main h1")).to_have_text("Overview")
        expect(page.locator("#live-status")).to_have_text("live")
        cookies = page.context.cookies()
        assert any(c["name"] == "jetjobs_dashboard_token" and c["httpOnly"] for c in cookies)
    finally:
        secured.stop()
