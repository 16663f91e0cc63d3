"""The Content-Security-Policy: strict for the portal's own pages, and the admin, the Swagger
UI (served from the installed sidecar, no CDN) and the browsable API still work under it."""

import pytest
from django.contrib.staticfiles import finders

from tests.browser_support import launched_chromium
from tests.recommendations.factories import UserFactory


def policy(response) -> dict[str, list[str]]:
    directives = {}
    for part in response["Content-Security-Policy"].split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


@pytest.mark.django_db
def test_admin_login_page_has_a_strict_policy(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    csp = policy(response)
    assert csp["default-src"] == ["'self'"]
    assert "'unsafe-inline'" not in csp["script-src"]
    assert "'unsafe-eval'" not in csp["script-src"]
    assert csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]


@pytest.mark.django_db
def test_swagger_ui_is_served_locally_with_no_inline_script(client):
    client.force_login(UserFactory(username="judy"))
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "cdn." not in html
    assert "jsdelivr" not in html
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "<script>" not in html  # the init script comes from a URL, allowed by 'self'
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    script = client.get("/api/v1/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "/api/v1/schema/" in script.content.decode()


@pytest.mark.django_db
def test_inline_script_with_the_request_nonce_is_allowed(rf):
    """Templates that need an inline script use `nonce="{{ request.csp_nonce }}"`."""
    from csp.middleware import CSPMiddleware
    from django.http import HttpResponse

    def view(request):
        return HttpResponse(f'<script nonce="{request.csp_nonce}">1</script>')

    request = rf.get("/")
    response = CSPMiddleware(view)(request)
    nonce = response.content.decode().split('nonce="')[1].split('"')[0]
    assert f"'nonce-{nonce}'" in policy(response)["script-src"]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_admin_swagger_ui_and_browsable_api_render_without_csp_violations(live_server, settings):
    settings.DEBUG = True  # so the live server serves the static files from the apps
    user = UserFactory(username="kim", is_superuser=True)
    violations = []
    with launched_chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(30_000)  # CI machines are busy
        page.on(
            "console", lambda msg: "Content Security Policy" in msg.text and violations.append((page.url, msg.text))
        )
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", "correct horse battery staple")
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}/admin/")
        assert page.locator("#site-name").is_visible()
        page.goto(f"{live_server.url}/api/v1/docs/")
        page.wait_for_selector(".swagger-ui .information-container")
        page.goto(f"{live_server.url}/api/v1/remediation-activities/")  # the browsable API
        page.wait_for_selector(".response-info")
        assert page.evaluate("typeof window.jQuery") == "function"  # its scripts ran
        # DRF's "Log out" is an inline onclick, allowed by its hash alone.
        page.click("a.dropdown-toggle")
        # Wait until the logout POST and its redirect have finished before going elsewhere;
        # a new navigation while they are under way aborts one of them.
        with page.expect_navigation():
            page.click("text=Log out")
        page.wait_for_load_state("networkidle")
        page.goto(f"{live_server.url}/admin/")
        assert "/admin/login/" in page.url
    assert violations == []
