"""Checks shared by the discovery tests."""
import defusedxml.ElementTree as SafeET


def parse_xml(response):
    assert response["Content-Type"] == "application/xml; charset=utf-8", response["Content-Type"]
    return SafeET.fromstring(response.content)


def problem_of(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["type"] == "about:blank"
    return body
