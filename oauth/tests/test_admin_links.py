"""Links every admin page shows lead somewhere that works (issue 10, item 10): "Change
password" (on every page) and "View on site" (OAuth clients)."""
import pytest

from conftest import STRONG_PASSWORD
from oauth.models import OAuthClient

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Velvet-Harbour-Copper-Thistle-72"


def test_change_password_link_leads_to_a_page_that_changes_it(admin_client):
    index = admin_client.get("/admin/")
    assert "/admin/password_change/" in index.content.decode()
    resp = admin_client.get("/admin/password_change/", follow=True)
    assert resp.status_code == 200
    assert resp.redirect_chain and resp.redirect_chain[-1][0].endswith("/account/password/")
    form = admin_client.post("/account/password/", {"current_password": STRONG_PASSWORD,
                                                    "new_password": NEW_PASSWORD, "new_password_confirm": NEW_PASSWORD})
    assert form.status_code == 302, form.content.decode()[:2000]
    admin_client.logout()
    assert admin_client.login(username="admin@example.org", password=NEW_PASSWORD)


def test_password_change_done_is_not_a_500(admin_client):
    assert admin_client.get("/admin/password_change/done/").status_code == 302


def test_no_view_on_site_link_for_oauth_clients(admin_client):
    stored = OAuthClient.objects.create(client_id="listed", client_secret="Admin-Page-Secret-1", description="x")
    page = admin_client.get(f"/admin/oauth/oauthclient/{stored.pk}/change/").content.decode()
    assert "View on site" not in page and "/admin/r/" not in page
