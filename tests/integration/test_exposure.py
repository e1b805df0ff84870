"""Nobody in who does not belong: which service can call which, proven on a real lab.

compose/compose.yaml gives each conversation its own network (temporal, bank,
control) and the bank two listeners: the teller API on 8000 for the worker and the
starter, and the control API on 8001 (the fault switch, the page) only on its
control network, where the published port lands. This lab is started as an
exposed one is: with a control token, so the switch's writes need it.

Its own Compose project (crashlab-exposure) on random ports.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from crashlab import cli
from crashlab.stack import BANK_PORT, Stack
from crashlab.testing import Lab
from tests.integration.browser import Browser
from tests.integration.module01 import ROOT

pytestmark = pytest.mark.stack

TOKEN = "exposure-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DOWN = {"mode": "down"}
NO_FAULTS = {"withdraw": None, "deposit": None}
ARTIFACTS = ROOT / "test-artifacts"
ERROR_SHOWN = "(() => document.getElementById('error').textContent || null)()"

# Run inside the worker's container: every way it might try to reach the fault switch,
# and the calls it needs. Prints one JSON object: what each attempt got.
PROBE = r"""
import json, socket, sys, urllib.error, urllib.request

control_ip = sys.argv[1]
out = {}

def connect(host, port):
    try:
        with socket.create_connection((host, port), timeout=2):
            return "open"
    except socket.gaierror:
        return "no such name"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timed out"
    except OSError as err:
        return f"unreachable ({err.strerror})"

def http(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        "content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
    except OSError as err:
        return None, str(err)

for host, port in (("bank", 8000), ("bank", 8001), ("bank-control", 8001),
                   (control_ip, 8001), (control_ip, 8000)):
    out[f"{host}:{port}"] = connect(host, port)
out["put"] = http("PUT", "http://bank:8000/faults/all", {"mode": "down"},
                  {"Authorization": "Bearer " + sys.argv[2]})
out["delete"] = http("DELETE", "http://bank:8000/faults")
out["withdraw"] = http("POST", "http://bank:8000/accounts/10-007/withdraw", {"amount": 3},
                       {"Idempotency-Key": "exposure-probe-withdraw"})
out["void"] = http("POST", "http://bank:8000/void", None,
                   {"Idempotency-Key": "exposure-probe-never-sent"})
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(project="crashlab-exposure", env={"BANK_CONTROL_TOKEN": TOKEN}) as running:
        yield running


def inspect(container_id: str) -> dict[str, Any]:
    out = subprocess.run(
        ["docker", "inspect", container_id], capture_output=True, text=True, check=True
    )
    found: dict[str, Any] = json.loads(out.stdout)[0]
    return found


def networks_of(lab: Lab, service: str) -> dict[str, Any]:
    [container] = lab.containers(service)
    found: dict[str, Any] = inspect(container.id)["NetworkSettings"]["Networks"]
    return found


def faults(lab: Lab) -> dict[str, Any]:
    return dict(httpx.get(f"{lab.bank_url}/faults", timeout=5).json())


def test_each_service_is_on_the_networks_of_its_conversations(lab: Lab) -> None:
    p = lab.project
    on = {s: set(networks_of(lab, s)) for s in ("temporal", "bank", "worker")}
    assert on == {
        "temporal": {f"{p}_temporal"},
        "bank": {f"{p}_bank", f"{p}_control"},
        "worker": {f"{p}_temporal", f"{p}_bank"},
    }
    assert not on["bank"] & on["temporal"], "the bank and Temporal share a network"
    internal = subprocess.run(
        ["docker", "network", "inspect", "--format", "{{.Internal}}", f"{p}_bank"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert internal.stdout.strip() == "true"
    # What a disconnect cuts: every network shared with another service, never control.
    assert lab.links("bank") == [f"{p}_bank"]
    assert lab.links("temporal") == [f"{p}_temporal"]
    assert lab.links("worker") == [f"{p}_bank", f"{p}_temporal"]


def test_the_published_bank_port_lands_on_the_control_api(lab: Lab) -> None:
    [bank] = lab.containers("bank")
    ports = inspect(bank.id)["NetworkSettings"]["Ports"]
    assert ports.get(f"{BANK_PORT}/tcp"), ports
    assert not ports.get("8000/tcp"), "the teller API must not be published"
    page = httpx.get(f"{lab.bank_url}/", timeout=5)
    assert page.status_code == 200 and "Fault switch" in page.text
    doc = httpx.get(f"{lab.bank_url}/openapi.json", timeout=5).json()
    assert "/faults/{target}" in doc["paths"]
    assert "401" in doc["paths"]["/faults/{target}"]["put"]["responses"]


def test_from_the_worker_the_fault_switch_cannot_be_reached_at_all(lab: Lab) -> None:
    [worker] = lab.containers("worker")
    control_ip = networks_of(lab, "bank")[f"{lab.project}_control"]["IPAddress"]
    before = lab.balances()["10-007"]
    # Even with the token: no container may change the switch, whoever knows it.
    probe = subprocess.run(
        ["docker", "exec", worker.id, "python", "-c", PROBE, control_ip, TOKEN],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    got = json.loads(probe.stdout)

    assert got["bank:8000"] == "open"  # the teller API: what the worker needs
    assert got["bank:8001"] == "refused"  # nothing listens there on the bank network
    assert got["bank-control:8001"] == "no such name"  # a name of the control network only
    for port in (8000, 8001):  # the control network is not the worker's: no route
        assert got[f"{control_ip}:{port}"] in ("timed out", "refused") or got[
            f"{control_ip}:{port}"
        ].startswith("unreachable"), got
    for call in ("put", "delete"):
        status, body = got[call]
        assert status == 404, got[call]
        assert "served only on the control port, from the host" in body["error"]["message"]
    assert faults(lab) == NO_FAULTS

    status, movement = got["withdraw"]
    assert status == 200, movement
    assert lab.balances()["10-007"] == before - 3
    status, settlement = got["void"]
    assert status == 200 and settlement["movement"] is None, settlement


def test_temporal_cannot_reach_the_bank(lab: Lab) -> None:
    [temporal] = lab.containers("temporal")
    # They share no network, so Docker's DNS does not even know the name there.
    probe = "import socket; socket.getaddrinfo('bank', 8000)"
    found = subprocess.run(
        ["docker", "exec", temporal.id, "python", "-c", probe],
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.returncode != 0, found.stdout
    assert "gaierror" in found.stderr


def test_with_a_token_a_change_without_it_is_refused_and_changes_nothing(lab: Lab) -> None:
    url = lab.bank_url
    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        refused = httpx.put(f"{url}/faults/all", json=DOWN, headers=headers, timeout=5)
        assert refused.status_code == 401, refused.text
        error = refused.json()["error"]
        assert error["code"] == "unauthorized"
        assert "Nothing was changed" in error["message"]
        assert httpx.delete(f"{url}/faults", headers=headers, timeout=5).status_code == 401
        assert faults(lab) == NO_FAULTS  # GET /faults needs no token

    done = httpx.put(f"{url}/faults/deposit", json=DOWN, headers=AUTH, timeout=5)
    assert done.status_code == 200, done.text
    assert faults(lab)["deposit"]["mode"] == "down"
    assert httpx.delete(f"{url}/faults", headers=AUTH, timeout=5).json() == NO_FAULTS


def test_the_levers_send_the_labs_token(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    def main(*args: str) -> int:
        # The CLI's Stack for this lab: the same project, ports and token as `lab`.
        return cli.main(["--project", lab.project, *args], stack_factory=lambda _: lab)

    assert main("fault", "withdraw", "error") == cli.EXIT_OK
    assert faults(lab)["withdraw"]["mode"] == "error"
    assert main("fault", "clear") == cli.EXIT_OK
    assert faults(lab) == NO_FAULTS
    without = Stack(project=lab.project, env={**lab.env, "BANK_CONTROL_TOKEN": "wrong"})
    code = cli.main(["fault", "deposit", "down"], stack_factory=lambda _: without)
    assert code == cli.EXIT_BAD_INPUT
    assert "401 unauthorized" in capsys.readouterr().err
    assert faults(lab) == NO_FAULTS


def test_a_disconnected_bank_is_cut_off_from_the_worker_but_not_from_this_machine(
    lab: Lab,
) -> None:
    [worker] = lab.containers("worker")

    def worker_reaches_bank() -> bool:
        probe = "import socket; socket.create_connection(('bank', 8000), timeout=2).close()"
        run = subprocess.run(
            ["docker", "exec", worker.id, "python", "-c", probe], capture_output=True, check=False
        )
        return run.returncode == 0

    url = lab.bank_url
    lab.disconnect("bank")
    try:
        [bank] = lab.containers("bank")
        assert not lab.is_connected(bank)
        assert set(networks_of(lab, "bank")) == {f"{lab.project}_control"}
        assert not worker_reaches_bank()
        # The learner still sees the bank, and its published port has not moved.
        assert lab.bank_url == url
        assert httpx.get(f"{url}/health", timeout=5).json() == {"status": "ok"}
    finally:
        lab.reconnect("bank")
    assert lab.is_connected(bank)
    assert worker_reaches_bank()
    assert lab.bank_url == url
    lab.wait_healthy("bank")


def test_the_page_takes_the_token_from_its_address_and_says_when_it_has_none(
    lab: Lab,
) -> None:
    url = lab.bank_url
    with Browser() as browser:
        browser.goto(f"{url}/")
        browser.wait_for("document.getElementById('now-deposit').textContent === 'now: normal'")
        browser.click('[data-testid="fault-deposit-error"]')
        shown = browser.wait_for(ERROR_SHOWN)
        assert "needs its control token" in shown and "#token=" in shown
        assert faults(lab) == NO_FAULTS
        browser.screenshot(ARTIFACTS / "bank-page-without-token.png")

        # The address `make up` prints: the page keeps the token and hides it. (From
        # the same page, a new fragment alone would not load the page again.)
        browser.goto("about:blank")
        browser.goto(f"{url}/#token={TOKEN}")
        browser.wait_for("document.getElementById('now-deposit').textContent === 'now: normal'")
        assert browser.evaluate("location.hash") == ""
        browser.click('[data-testid="fault-deposit-error"]')
        browser.wait_for("document.getElementById('now-deposit').textContent === 'now: error'")
        assert faults(lab)["deposit"]["mode"] == "error"
        browser.goto(f"{url}/")  # a reload in the same tab still has it
        browser.wait_for("document.getElementById('now-deposit').textContent === 'now: error'")
        browser.click('[data-testid="clear-all"]')
        browser.wait_for("document.getElementById('now-deposit').textContent === 'now: normal'")
    assert faults(lab) == NO_FAULTS
