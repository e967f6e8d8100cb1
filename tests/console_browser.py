#!/usr/bin/env python3
"""The web console in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`) driven over WebDriver by Selenium (`python3-selenium`), against a running
console beside the real door daemon on the simulated camera (tests/tests/console.rs starts both
and runs this script; `scripts/demo --console` starts the same pair for a person).

The camera loops: the enrolled person, two strangers, empty frames. The flow is what an admin
does: log in; see the live view move; enrol a stranger from the door camera and see the door let
them in, live; find the other stranger's denial with its picture in the review page, enrol them
from there and see them let in; lock the door down and see a face refused; log out. A viewer may
look but not act. A screenshot of every step is kept in --shots.

Exit status: 0 when every step held, 1 with the failed step named on stderr.
"""

import argparse
import json
import os
import sys
import time
import urllib.parse

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

STEP_TIMEOUT = 90.0


class Failed(Exception):
    pass


def browser(shots):
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    # A phone-sized window: the console must work on one. The certificate is the console's own
    # self-signed one (a browser would ask once; its fingerprint is `facegate console fingerprint`).
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--ignore-certificate-errors",
        "--window-size=412,915",
        "--disable-background-networking",
        "--no-first-run",
    ]:
        options.add_argument(arg)
    service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    return driver


class Flow:
    def __init__(self, driver, base, shots):
        self.d = driver
        self.base = base.rstrip("/")
        self.shots = shots
        self.n = 0

    def url(self, path):
        return self.base + path

    def get(self, path):
        self.d.get(self.url(path))

    def shot(self, name):
        self.n += 1
        self.d.save_screenshot(os.path.join(self.shots, f"{self.n:02}-{name}.png"))

    def wait(self, what, check, timeout=STEP_TIMEOUT, every=0.5, reload=False):
        since = time.monotonic()
        last = None
        while time.monotonic() - since < timeout:
            try:
                got = check()
                if got:
                    return got
            except WebDriverException as e:
                last = e
            time.sleep(every)
            if reload:
                self.d.refresh()
        raise Failed(f"{what}: not within {timeout:.0f} s" + (f" ({last.msg})" if last else ""))

    def path(self):
        return urllib.parse.urlparse(self.d.current_url).path

    def login(self, user, password):
        self.get("/login")
        self.d.find_element(By.CSS_SELECTOR, "form#login input[name=name]").send_keys(user)
        self.d.find_element(By.CSS_SELECTOR, "form#login input[name=password]").send_keys(password)
        self.d.find_element(By.CSS_SELECTOR, "form#login button[type=submit]").click()
        self.wait("the login lands on the live view", lambda: self.path() == "/")

    def logout(self):
        self.d.find_element(By.CSS_SELECTOR, "form#logout button[type=submit]").click()
        self.wait("logout lands on the login page", lambda: self.path() == "/login")

    def live_seq(self):
        return int(self.d.find_element(By.ID, "live").get_attribute("data-seq") or "0")

    def live_verdicts(self):
        return [
            li.get_attribute("data-verdict")
            for li in self.d.find_elements(By.CSS_SELECTOR, "#live-faces li")
        ]

    def decisions(self):
        """The live events list: (event, identity, reason) of each entry."""
        return [
            (li.get_attribute("data-event"), li.get_attribute("data-identity"),
             li.get_attribute("data-reason"))
            for li in self.d.find_elements(By.CSS_SELECTOR, "#events li")
        ]

    def fetch(self, method, path, body=None):
        """A request from inside the page (the session's cookie goes with it): (status, text)."""
        return self.d.execute_async_script(
            """
            const [method, path, body, done] = arguments;
            const init = {method, credentials: 'same-origin', redirect: 'manual'};
            if (body !== null) {
                init.body = new URLSearchParams(body);
            }
            fetch(path, init).then(r => r.text().then(t => done([r.status, t])))
                .catch(e => done([0, String(e)]));
            """,
            method,
            path,
            body,
        )


def admin_flow(f, user, password):
    # Nothing without a session: every page sends the browser to the login page.
    for page in ["/", "/people", "/audit", "/review"]:
        f.get(page)
        if f.path() != "/login":
            raise Failed(f"{page} without a session showed {f.path()}, not the login page")
    f.shot("login")
    f.login(user, password)

    # The live view moves: the door's frames arrive a few times a second.
    first = f.wait("the live view shows a frame", f.live_seq)
    f.wait("the live view moves", lambda: f.live_seq() > first)
    f.wait("the live view shows a face and its verdict", lambda: "let_in" in f.live_verdicts()
           or "unknown" in f.live_verdicts())
    f.shot("live-view")

    # Enrol a stranger from the door camera, while one stands there.
    f.get("/people/new")
    f.wait("a stranger at the door (live view on the enrol page)",
           lambda: "unknown" in f.live_verdicts(), every=0.2)
    f.d.find_element(By.CSS_SELECTOR, "form#from-camera input[name=name]").send_keys("Visitor One")
    f.d.find_element(By.CSS_SELECTOR, "form#from-camera button[type=submit]").click()
    enrolled = f.wait("the enrolment from the camera",
                      lambda: f.d.find_elements(By.ID, "enrolled"), timeout=60)
    visitor_one = enrolled[0].get_attribute("data-id")
    if not visitor_one:
        raise Failed("the enrolment page names no id")
    f.shot("enrolled-from-camera")

    # The door lets them in the next time they come, and the grant shows live.
    f.get("/")
    f.wait(f"{visitor_one} let in, live",
           lambda: ("grant", visitor_one, None) in [(e, i, None) for e, i, _ in f.decisions()])
    f.shot("visitor-one-let-in")

    # The other stranger is denied and waits, with a picture, in the review page.
    def group_with_picture():
        for group in f.d.find_elements(By.CSS_SELECTOR, ".group"):
            imgs = group.find_elements(By.TAG_NAME, "img")
            if imgs and all(f.d.execute_script(
                    "return arguments[0].complete && arguments[0].naturalWidth > 0", i)
                    for i in imgs):
                return group
        return None

    # A group of pictures of someone already enrolled (Visitor One's own denial from before
    # their enrolment) is refused by the door's duplicate check: it is dismissed, which is
    # what an admin does with it; the next group is the other stranger.
    visitor_two = None
    for attempt in range(4):
        f.get("/review")
        group = f.wait("a denied stranger's pictures in review", group_with_picture,
                       reload=True, every=2.0)
        if attempt == 0:
            f.shot("review")
        group.find_element(By.CSS_SELECTOR, "form.enrol-new input[name=name]").send_keys(
            "Visitor Two")
        group.find_element(By.CSS_SELECTOR, "form.enrol-new button[type=submit]").click()
        f.wait("the door's answer to the enrolment from review",
               lambda: f.d.find_elements(By.ID, "enrolled") or "duplicate" in f.d.page_source,
               timeout=60)
        enrolled = f.d.find_elements(By.ID, "enrolled")
        if enrolled:
            visitor_two = enrolled[0].get_attribute("data-id")
            break
        f.get("/review")
        group = f.wait("the duplicate group again", group_with_picture)
        group.find_element(By.CSS_SELECTOR, "form.dismiss button[type=submit]").click()
        f.wait("the door's answer to dismiss", lambda: "dismissed" in f.d.page_source)
    if not visitor_two or visitor_two == visitor_one:
        raise Failed(f"the enrolment from review named {visitor_two!r}")
    f.get("/")
    f.wait(f"{visitor_two} let in, live",
           lambda: "grant" in [e for e, i, _ in f.decisions() if i == visitor_two])
    f.shot("visitor-two-let-in")

    # Lockdown: an enrolled face is refused while it holds.
    f.d.find_element(By.CSS_SELECTOR, "form#lockdown-on button[type=submit]").click()
    f.wait("the door's answer to lockdown", lambda: "lockdown on" in f.d.page_source)
    f.get("/")
    f.wait("lockdown shown", lambda: "lockdown" in
           f.d.find_element(By.ID, "door-state").text.lower())
    f.wait("a face refused in lockdown",
           lambda: any(e == "deny" and r == "lockdown" for e, _, r in f.decisions()))
    f.shot("lockdown-refuses")
    f.d.find_element(By.CSS_SELECTOR, "form#lockdown-off button[type=submit]").click()
    f.wait("the door's answer to lifting lockdown", lambda: "lockdown off" in f.d.page_source)
    f.get("/")
    f.wait("lockdown lifted", lambda: "lockdown" not in
           f.d.find_element(By.ID, "door-state").text.lower())

    # The audit trail with pictures, and its CSV.
    f.get("/audit")
    f.wait("audit lines with pictures", lambda: f.d.find_elements(By.CSS_SELECTOR,
                                                                 "#audit img"))
    f.shot("audit")
    status, text = f.fetch("GET", "/audit.csv", None)
    if status != 200 or not text.startswith("seq,"):
        raise Failed(f"audit.csv answered {status}: {text[:80]!r}")

    # A change without the session's CSRF token is refused, whatever the session.
    status, _ = f.fetch("POST", "/door/unlock", {})
    if status != 403:
        raise Failed(f"an unlock without a CSRF token answered {status}, not 403")

    f.logout()
    f.get("/")
    if f.path() != "/login":
        raise Failed("after logout the live view is still shown")
    f.shot("logged-out")


def viewer_flow(f, user, password):
    f.login(user, password)
    f.wait("the viewer sees the live view", f.live_seq)
    if f.d.find_elements(By.CSS_SELECTOR, "form#lockdown-on, form#unlock"):
        raise Failed("a viewer is offered the door's controls")
    # Even with the page's own CSRF token, a viewer's change is refused.
    token = f.d.find_element(By.CSS_SELECTOR, "meta[name=csrf]").get_attribute("content")
    status, _ = f.fetch("POST", "/door/lockdown", {"csrf": token, "state": "on"})
    if status != 403:
        raise Failed(f"a viewer's lockdown answered {status}, not 403")
    f.get("/people/new")
    if f.d.find_elements(By.ID, "from-camera"):
        raise Failed("a viewer is offered enrolment")
    if "403" not in f.d.page_source:
        raise Failed("a viewer's enrolment page was not refused with 403")
    f.get("/")
    f.shot("viewer")
    f.logout()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--admin", required=True, help="USER:PASSWORD")
    ap.add_argument("--viewer", required=True, help="USER:PASSWORD")
    ap.add_argument("--shots", required=True, help="directory for the screenshots")
    a = ap.parse_args()
    os.makedirs(a.shots, exist_ok=True)
    driver = browser(a.shots)
    f = Flow(driver, a.url, a.shots)
    try:
        admin_flow(f, *a.admin.split(":", 1))
        viewer_flow(f, *a.viewer.split(":", 1))
    except Failed as e:
        f.shot("failed")
        print(f"console_browser: FAILED: {e}", file=sys.stderr)
        return 1
    except WebDriverException as e:
        f.shot("failed")
        print(f"console_browser: FAILED (browser): {e.msg}", file=sys.stderr)
        return 1
    finally:
        driver.quit()
    print(json.dumps({"passed": True, "screenshots": f.n, "dir": a.shots}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
