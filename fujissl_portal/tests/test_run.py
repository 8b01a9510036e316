"""`make run`: the first login is created and printed once; web, worker and beat
start together on the embedded defaults and stop together on Ctrl-C; a taken port
stops it before anything starts."""

import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.core.management import call_command

from certificates.tests.waiting import wait_for
from fujissl_portal.tests.commands import manage
from testbed.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_bootstrap_prints_a_login_that_works_and_only_once(client):
    out = io.StringIO()
    call_command("bootstrap_portal", stdout=out)
    username = re.search(r"user name: (\S+)", out.getvalue()).group(1)
    password = re.search(r"password:\s+(\S+)", out.getvalue()).group(1)
    assert client.login(username=username, password=password)
    # An owner must have a second factor: the first page is its set-up.
    first = client.get("/")
    assert first.status_code == 302 and first["Location"].startswith("/accounts/2fa/")
    assert client.get(first["Location"]).status_code == 200

    again = io.StringIO()
    call_command("bootstrap_portal", stdout=again)
    assert password not in again.getvalue()


def test_runportal_serves_pages_with_worker_and_beat_and_stops_them_all(tmp_path):
    # The embedded defaults, whatever the surrounding test run is configured with.
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL",
                        "DJANGO_SETTINGS_MODULE")}
    env.update(DEBUG="1", PORTAL_VAR_DIR=str(tmp_path / "var"))
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=120)
    out = subprocess.run([*manage, "bootstrap_portal"], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True, timeout=60).stdout
    username = re.search(r"user name: (\S+)", out).group(1)
    password = re.search(r"password:\s+(\S+)", out).group(1)

    port = free_port()
    log = tmp_path / "runportal.log"
    with log.open("w") as sink:
        portal = subprocess.Popen([*manage, "runportal", "--addr", f"127.0.0.1:{port}"],
                                  cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def login_page_served():
            try:
                return requests.get(f"{base}/accounts/login/", timeout=2).status_code == 200
            except (requests.ConnectionError, requests.Timeout):  # still starting
                return False

        wait_for(login_page_served, 60, "the login page being served", log)
        wait_for(lambda: " ready." in log.read_text(), 60, "the worker being ready", log)
        wait_for(lambda: "beat: Starting" in log.read_text(), 60, "beat starting", log)

        session = requests.Session()
        # The admin signs in through the portal's login...
        page = session.get(f"{base}/admin/login/?next=/admin/", timeout=5)
        assert "/accounts/login/" in page.url
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        response = session.post(
            page.url,
            data={"login": username, "password": password, "csrfmiddlewaretoken": token},
            headers={"Referer": page.url}, timeout=5,
        )
        # ...and the first administrator is asked to set up a second factor.
        assert response.status_code == 200
        assert "/accounts/2fa/" in response.url
        assert "/accounts/2fa/totp/activate" in response.text
    finally:
        portal.send_signal(signal.SIGINT)
        try:
            portal.wait(timeout=40)
        finally:
            if portal.poll() is None:
                os.killpg(portal.pid, signal.SIGKILL)
    # Nothing of the three is left in the process group.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.killpg(portal.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.3)
    else:
        os.killpg(portal.pid, signal.SIGKILL)
        pytest.fail("a process of the portal outlived Ctrl-C")


def test_runportal_on_a_taken_port_says_so_and_exits_non_zero(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        addr = f"127.0.0.1:{taken.getsockname()[1]}"

        result = manage(tmp_path, "runportal", "--addr", addr, DEBUG="1")

    assert result.returncode != 0
    assert f"Cannot listen on {addr}" in result.stderr
    assert "make run ADDR=127.0.0.1:8800" in result.stderr
    assert "running at" not in result.stdout + result.stderr
