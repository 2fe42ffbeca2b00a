"""Harrow's web app in headless Chromium (run by scripts/browser-test).

Usage: browser_test.py BASE_URL EMAIL PASSWORD [SCREENSHOT_PATH]

Walks what a newcomer does: log in, make an organization and a project, a task and a job, run
it and watch its log arrive live, cancel a run that sleeps; checks the security headers, that
the page's scripts never see the session token, and that the browser's console stays free of
errors on every page. Exits non-zero, saying what failed, on the first failure.
"""

import sys
import time
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

base, email, password = sys.argv[1], sys.argv[2], sys.argv[3]
screenshot = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] else None


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def headers():
    with urllib.request.urlopen(base + "/", timeout=10) as response:
        return response.headers


answer = headers()
csp = answer.get("Content-Security-Policy", "")
check("script-src 'self'" in csp and "unsafe" not in csp and "frame-ancestors 'none'" in csp, f"CSP: {csp!r}")
check(answer.get("X-Content-Type-Options") == "nosniff", "X-Content-Type-Options")

options = webdriver.ChromeOptions()
for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"]:
    options.add_argument(argument)
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
wait = WebDriverWait(driver, 30)


def console_errors(where, expected=()):
    """Fails on any error in the console since the last look but the expected answers, given
    as "path status" (a 401 the app asked for knowingly: "who am I" before logging in, a wrong
    password; a dead link's 400)."""
    def is_expected(message):
        return any(path in message and f"status of {status}" in message for path, status in (e.split() for e in expected))
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE" and not is_expected(entry["message"])]
    check(not errors, f"errors in the browser's console on {where}: {errors}")


def heading(text):
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "main h1"), text))


def fill(form, values):
    for name, value in values.items():
        field = form.find_element(By.NAME, name)
        if field.tag_name == "select":
            Select(field).select_by_visible_text(value)
        else:
            field.clear()
            field.send_keys(value)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def save(form, values):
    """Fills and submits `form`, then waits until the page is drawn again (the old form gone)."""
    fill(form, values)
    wait.until(EC.staleness_of(form))


def open_details(summary_text):
    summary = wait.until(EC.element_to_be_clickable((By.XPATH, f"//summary[normalize-space()='{summary_text}']")))
    details = summary.find_element(By.XPATH, "..")
    if details.get_attribute("open") is None:
        summary.click()
    return details.find_element(By.TAG_NAME, "form")


try:
    # Anyone not logged in lands on the login page, which a wrong password does not pass.
    driver.get(base + "/")
    heading("Log in")
    console_errors("the login page", expected=["/v1/me 401"])
    fill(driver.find_element(By.TAG_NAME, "form"), {"email": email, "password": "wrong password"})
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "[role=alert]")))
    console_errors("a wrong password", expected=["/v1/sessions 401"])
    fill(driver.find_element(By.TAG_NAME, "form"), {"email": email, "password": password})
    heading("Projects")
    cookie = driver.get_cookie("harrow_session")
    check(cookie is not None and cookie.get("httpOnly") and cookie.get("sameSite") == "Strict", f"session cookie: {cookie}")
    check(driver.execute_script("return document.cookie").find("harrow_session") < 0, "scripts can read the session cookie")

    fill(open_details("New organization"), {"name": "Acme"})
    wait.until(EC.presence_of_element_located((By.XPATH, "//h2[normalize-space()='Acme']")))
    fill(open_details("New project"), {"name": "Web"})
    heading("Web")
    project_url = driver.current_url

    fill(open_details("New task"), {"name": "hello", "script": "echo hello from the browser\necho to stderr >&2"})
    wait.until(EC.presence_of_element_located((By.XPATH, "//select[@name='task_id']/option[normalize-space()='hello']")))
    fill(open_details("New job"), {"name": "greet", "task_id": "hello"})
    run = wait.until(EC.element_to_be_clickable((By.XPATH, "//button[@aria-label='Run greet now']")))
    console_errors("the project page")
    run.click()

    # The log arrives live, and the status follows.
    WebDriverWait(driver, 90).until(EC.text_to_be_present_in_element((By.ID, "log"), "hello from the browser"))
    WebDriverWait(driver, 60).until(EC.text_to_be_present_in_element((By.ID, "operation-status"), "succeeded"))
    log = driver.find_element(By.ID, "log")
    check(log.text.count("hello from the browser") == 1, f"the line shown once: {log.text!r}")
    check(len(log.find_elements(By.CSS_SELECTOR, "span.stderr")) == 1, "stderr apart")
    timeline = driver.find_element(By.ID, "timeline").text
    check("Queued" in timeline and "run by hand" in timeline and "Ended" in timeline, f"the timeline: {timeline!r}")
    console_errors("the operation page")
    if screenshot:
        driver.save_screenshot(screenshot)

    # The operations list filtered by status, by URL too; a job and a task edited in place.
    driver.get(project_url)
    heading("Web")
    Select(wait.until(EC.presence_of_element_located((By.ID, "status-filter")))).select_by_visible_text("failed")
    driver.find_element(By.XPATH, "//button[normalize-space()='Show']").click()
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "main"), "No failed operations."))
    check(driver.current_url.endswith("?status=failed"), f"the filter in the URL: {driver.current_url}")
    Select(driver.find_element(By.ID, "status-filter")).select_by_visible_text("succeeded")
    driver.find_element(By.XPATH, "//button[normalize-space()='Show']").click()
    wait.until(EC.presence_of_element_located((By.XPATH, "//table[@id='operations']//td[normalize-space()='succeeded']")))
    save(open_details("Edit greet"), {"time_limit_seconds": "120"})
    check(open_details("Edit greet").find_element(By.NAME, "time_limit_seconds").get_attribute("value") == "120", "the job's time limit saved")
    edited = open_details("Edit hello")
    check("hello from the browser" in edited.find_element(By.NAME, "script").get_attribute("value"), "the task's script in its editor")
    save(edited, {"script": "echo edited in the browser"})
    check("echo edited in the browser" == open_details("Edit hello").find_element(By.NAME, "script").get_attribute("value"), "the task's script saved")
    console_errors("the project page after edits")

    # The project's other pages: each opens clean; a secret is write-only; a webhook's secret
    # is shown once; a schedule shows its next times.
    for tab, title in [("environments", "environments"), ("repositories", "repositories"), ("schedules", "schedules"),
                       ("triggers", "triggers"), ("webhooks", "webhooks"), ("notifications", "notifications"),
                       ("members", "members"), ("settings", "settings"), ("activity", "activity")]:
        driver.get(f"{project_url}/{tab}")
        heading(f"Web: {title}")
        console_errors(f"the project's {tab}")
    driver.get(f"{project_url}/environments")
    heading("Web: environments")
    fill(open_details("Set a secret in default"), {"name": "API_TOKEN", "value": "s3cret-value-123"})
    wait.until(EC.presence_of_element_located((By.XPATH, "//td[normalize-space()='API_TOKEN']")))
    check("s3cret-value-123" not in driver.page_source, "a secret's value shown")
    fill(open_details("New environment"), {"name": "staging", "variables": "GREETING=hi"})
    save(open_details("Edit staging"), {"target": "ssh://deploy@app.example.com"})
    wait.until(EC.presence_of_element_located((By.XPATH, "//td[normalize-space()='GREETING']")))
    check("Scripts run on ssh://deploy@app.example.com over SSH." in driver.find_element(By.TAG_NAME, "main").text, "the environment's target")
    driver.get(f"{project_url}/repositories")
    heading("Web: repositories")
    fill(open_details("New repository"), {"url": "https://git.example.com/acme/web.git"})
    fill(open_details("Set a token for web"), {"token": "tok-en-value-1"})
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "main"), "An HTTPS access token is set."))
    check("tok-en-value-1" not in driver.page_source, "a repository's token shown")
    # Gone again, or every later run would check out a host that does not exist.
    driver.find_element(By.XPATH, "//button[@aria-label='Delete repository web']").click()
    wait.until(EC.alert_is_present()).accept()
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "main"), "No repositories yet."))
    driver.get(f"{project_url}/schedules")
    heading("Web: schedules")
    # The next fire times appear as the spec is typed, in the chosen time zone; a wrong spec says why.
    schedule = open_details("New schedule")
    schedule.find_element(By.NAME, "cron").send_keys("61 * * * *")
    wait.until(lambda _: "minute" in schedule.find_element(By.CSS_SELECTOR, ".preview").text.lower())
    console_errors("a wrong cron spec", expected=["/schedule-preview 422"])
    zone = schedule.find_element(By.NAME, "time_zone")
    zone.clear()
    zone.send_keys("Asia/Tokyo")
    check(driver.execute_script("return document.querySelectorAll('#time-zones option').length") > 300, "the time zone suggestions")
    cron = schedule.find_element(By.NAME, "cron")
    cron.clear()
    cron.send_keys("30 9 * * 1")
    wait.until(lambda _: len(schedule.find_elements(By.CSS_SELECTOR, ".preview li")) == 5)
    times = [item.text for item in schedule.find_elements(By.CSS_SELECTOR, ".preview li")]
    check(all("09:30" in text and "Mon" in text for text in times), f"the preview's times: {times}")
    schedule.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(EC.presence_of_element_located((By.XPATH, "//td[starts-with(normalize-space(), '30 9 * * 1 (Asia/Tokyo)')]")))
    driver.get(f"{project_url}/webhooks")
    heading("Web: webhooks")
    fill(open_details("New webhook"), {"name": "deploy hook"})
    secret = wait.until(EC.presence_of_element_located((By.ID, "shown-secret"))).text
    check(len(secret) == 43, f"the webhook's secret: {secret!r}")
    driver.refresh()
    heading("Web: webhooks")
    wait.until(EC.presence_of_element_located((By.XPATH, "//td[normalize-space()='deploy hook']")))
    check(secret not in driver.page_source, "the webhook's secret shown again")
    driver.get(f"{project_url}/notifications")
    heading("Web: notifications")
    fill(open_details("New email notifier"), {"name": "ops", "recipients": "ops@example.com"})
    wait.until(EC.presence_of_element_located((By.XPATH, "//td[normalize-space()='ops@example.com']")))
    fill(open_details("New rule"), {"notifier_id": "ops"})
    wait.until(EC.presence_of_element_located((By.XPATH, "//td[normalize-space()='operation.failed']")))
    driver.get(base + "/account")
    heading("Your account")
    wait.until(EC.presence_of_element_located((By.XPATH, "//td[normalize-space()='this one']")))
    driver.get(project_url)
    heading("Web")
    driver.find_element(By.XPATH, "//nav[@aria-label='Project']/a[normalize-space()='Members']").click()
    heading("Web: members")
    driver.find_element(By.LINK_TEXT, "the organization").click()
    heading("Acme")
    fill(open_details("Invite someone"), {"email": "newcomer@example.com", "role": "member"})
    wait.until(EC.presence_of_element_located((By.XPATH, "//td[normalize-space()='newcomer@example.com']")))
    console_errors("the project's pages after changes")

    # A run that sleeps is canceled from its page.
    driver.get(project_url)
    fill(open_details("New task"), {"name": "sleepy", "script": "echo going to sleep\nsleep 120"})
    wait.until(EC.presence_of_element_located((By.XPATH, "//select[@name='task_id']/option[normalize-space()='sleepy']")))
    fill(open_details("New job"), {"name": "nap", "task_id": "sleepy"})
    wait.until(EC.element_to_be_clickable((By.XPATH, "//button[@aria-label='Run nap now']"))).click()
    WebDriverWait(driver, 90).until(EC.text_to_be_present_in_element((By.ID, "log"), "going to sleep"))
    driver.find_element(By.XPATH, "//button[normalize-space()='Cancel']").click()
    WebDriverWait(driver, 60).until(EC.text_to_be_present_in_element((By.ID, "operation-status"), "canceled"))
    console_errors("the canceled operation's page")
    operation_id = driver.current_url.rsplit("/", 1)[1]

    # The admin's queues page: the dead letter scripts/browser-test made, retried into a paused
    # queue, where it waits (ready 1, dead 0).
    driver.find_element(By.XPATH, "//nav//a[normalize-space()='Queues']").click()
    heading("Queues")
    row = "//table[@id='queues']//tr[@data-queue='default']"
    WebDriverWait(driver, 60).until(EC.text_to_be_present_in_element((By.XPATH, row + "/td[@class='dead']"), "1"))
    driver.find_element(By.XPATH, "//button[@aria-label='Pause default']").click()
    wait.until(EC.element_to_be_clickable((By.XPATH, "//button[@aria-label='Resume default']")))
    retry = wait.until(EC.element_to_be_clickable((By.XPATH, "//section[@aria-label='Dead letters of default']//button[normalize-space()='Retry']")))
    check("unknown" in driver.find_element(By.XPATH, "//section[@aria-label='Dead letters of default']").text.lower(), "the dead letter's error")
    retry.click()
    wait.until(EC.text_to_be_present_in_element((By.XPATH, row + "/td[@class='ready']"), "1"))
    check(driver.find_element(By.XPATH, row + "/td[@class='dead']").text == "0", "the dead letter left the dead list")
    check(driver.find_elements(By.XPATH, "//h2[normalize-space()='Workers']/following-sibling::*[1]//td[contains(., 'operations')]"),
          "the worker and its queues on the queues page")
    chart = wait.until(EC.presence_of_element_located((By.XPATH, "//section[@aria-label='Throughput']//*[local-name()='svg']")))
    check("last hour" in chart.get_attribute("aria-label"), f"the throughput chart: {chart.get_attribute('aria-label')!r}")
    console_errors("the admin queues page")
    # One queue's page: its jobs by state; the retried job waits among the ready ones.
    driver.find_element(By.XPATH, row + "/th/a").click()
    heading("Queue default")
    # Its address opens it again after a reload (it is the app's, not the API's).
    driver.refresh()
    heading("Queue default")
    wait.until(EC.presence_of_element_located((By.XPATH, "//section[@aria-label='Ready']//td[contains(., 'no-such-type')]")))
    check("None running." in driver.find_element(By.XPATH, "//section[@aria-label='In flight']").text, "nothing in flight")
    console_errors("a queue's page")
    driver.back()
    heading("Queues")

    # On a phone's width no page scrolls sideways (wide tables scroll within themselves).
    driver.set_window_size(390, 844)
    for path, title in [(project_url, "Web"), (f"{project_url}/environments", "Web: environments"),
                        (f"{project_url}/schedules", "Web: schedules"), (base + "/admin", "Queues")]:
        driver.get(path)
        heading(title)
        time.sleep(0.3)
        wide = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        check(wide <= 0, f"{path} is {wide} px wider than a phone's screen")
    driver.set_window_size(1280, 900)
    driver.get(f"{project_url}/operations/{operation_id}")

    # A deep link opens its page after a reload; logging out ends the session.
    driver.refresh()
    WebDriverWait(driver, 30).until(EC.text_to_be_present_in_element((By.ID, "operation-status"), "canceled"))
    driver.find_element(By.XPATH, "//button[normalize-space()='Log out']").click()
    heading("Log in")
    driver.get(project_url)
    heading("Log in")
    console_errors("the pages after logging out", expected=["/v1/me 401"])
    # Logging in again leads back to the page that asked for it.
    fill(driver.find_element(By.TAG_NAME, "form"), {"email": email, "password": password})
    heading("Web")
    # A mail's link that no longer works says so on its page.
    driver.get(base + "/verify-email?token=not-a-token")
    heading("This link does not work")
    check(driver.find_elements(By.CSS_SELECTOR, "[role=alert]"), "the link's error")
    console_errors("a dead verification link", expected=["/v1/users/verify 400"])
    driver.get(base + "/signup")
    heading("Sign up")
    console_errors("the sign-up page")
    print("browser test: passed")
except (AssertionError, TimeoutException) as failure:
    print(f"browser test failed at {driver.current_url}: {failure!r}", file=sys.stderr)
    print(driver.find_element(By.TAG_NAME, "body").text[:2000], file=sys.stderr)
    sys.exit(1)
finally:
    driver.quit()
