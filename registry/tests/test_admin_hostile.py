"""Crafted requests to the generic admin pages (issue 10, final hostile-input pass)."""
import pytest

from oauth.models import OAuthClient

pytestmark = pytest.mark.django_db

LIST = "/admin/oauth/oauthclient/"


@pytest.mark.parametrize("query", ["?q=a%00b", "?client_type=%00", "?o=1%00", "?q%00=x"])
def test_nul_in_an_admin_query_string_is_a_400(admin_client, query):
    """PostgreSQL refuses NUL in text: the search or filter query was a 500 there."""
    resp = admin_client.get(LIST + query)
    assert resp.status_code == 400


def test_nul_in_an_admin_form_is_a_400(admin_client):
    resp = admin_client.post(LIST, {"action": "delete_selected", "_selected_action": ["1\x00"]})
    assert resp.status_code == 400


@pytest.mark.parametrize("bogus", ["abc", "99999999999999999999999", "1.5"])
def test_action_on_ids_that_are_not_ids_is_refused_not_a_500(admin_client, bogus):
    kept = OAuthClient.objects.create(client_id="kept", client_secret="Admin-Page-Secret-1", description="x")
    resp = admin_client.post(LIST, {"action": "delete_selected", "_selected_action": [str(kept.pk), bogus]})
    assert resp.status_code == 302
    assert OAuthClient.objects.filter(pk=kept.pk).exists()
    page = admin_client.get(resp["Location"]).content.decode()
    assert "not valid" in page


def test_action_on_valid_ids_still_works(admin_client):
    kept = OAuthClient.objects.create(client_id="kept", client_secret="Admin-Page-Secret-1", description="x")
    resp = admin_client.post(LIST, {"action": "delete_selected", "_selected_action": [str(kept.pk)]})
    assert resp.status_code == 200 and "Are you sure" in resp.content.decode()
