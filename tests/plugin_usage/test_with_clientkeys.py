"""How another team's suite uses the clientkeys pytest plugin (the README shows this file).

Nothing to import: installing clientkeys registers the fixtures.
"""

import requests


def test_create_then_list(clientkeys_server):
    server = clientkeys_server  # a real server on a free port, emptied for this test
    created = requests.post(server.keys_url, json={"name": "CI"}, headers=server.headers("write"))
    assert created.status_code == 201

    listed = requests.get(server.keys_url, headers=server.headers("read"))
    assert [key["name"] for key in listed.json()] == ["CI"]
    assert 'rel="next"' in listed.headers["Link"]


def test_read_only_token_cannot_create(clientkeys_server):
    server = clientkeys_server
    response = requests.post(server.keys_url, json={}, headers=server.headers("read"))
    assert response.status_code == 403
    assert response.json() == {"detail": "You do not have permission to perform this action."}


def test_each_test_starts_empty(clientkeys_server):
    listed = requests.get(clientkeys_server.keys_url, headers=clientkeys_server.headers("read"))
    assert listed.json() == []


def test_the_journal_shows_what_the_client_sent(clientkeys_server):
    server = clientkeys_server
    requests.post(server.keys_url, json={"name": "x" * 65}, headers=server.headers("admin"))
    [entry] = server.journal()
    assert (entry["method"], entry["status"], entry["validated"]) == ("POST", 400, False)


def test_in_process_app_for_speed(clientkeys_app):
    app = clientkeys_app  # same API, no socket: use app.client like requests
    key = app.client.post(app.keys_url, json={}, headers=app.headers("admin")).json()
    response = app.client.delete(app.key_url(key["id"]), headers=app.headers("admin"))
    assert response.status_code == 204
