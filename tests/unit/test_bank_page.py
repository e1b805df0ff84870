"""GET /: the bank's page for people (tests/integration/test_pages.py drives it in Chromium)."""

import re

import httpx


async def test_root_serves_the_page(bank_http: httpx.AsyncClient) -> None:
    response = await bank_http.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<title>Crash-proof lab bank</title>" in response.text
    assert "Fault switch" in response.text


async def test_the_page_calls_only_the_documented_api(bank_http: httpx.AsyncClient) -> None:
    page = (await bank_http.get("/")).text
    documented = (await bank_http.get("/openapi.json")).json()["paths"]

    # Relative paths, so that the page works behind a proxy that adds a prefix.
    called = set(re.findall(r'call\("[A-Z]+", [`"]([a-z]+)', page))
    assert called == {"accounts", "ledger", "faults"}
    assert all(f"/{path}" in documented for path in called)
    assert "/" not in documented  # the page is not part of the API


async def test_the_page_sends_the_control_token_only_on_changes(
    bank_http: httpx.AsyncClient,
) -> None:
    """An exposed lab's page is opened as http://host:8081/#token=... (tests/integration/
    test_exposure.py clicks it in Chromium): the fragment never reaches the server."""
    page = (await bank_http.get("/")).text

    assert 'get("token")' in page and "location.hash" in page
    assert "sessionStorage" in page  # this tab only, not every later visit
    assert "history.replaceState" in page  # out of the address bar
    assert 'method !== "GET"' in page and "Bearer ${token}" in page
    assert "response.status === 401" in page
