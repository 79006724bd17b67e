"""A key of one project can never read or write another project's data."""

from tests.support import auth, make_key


def test_projects_do_not_see_each_other(client, conn):
    acme, globex = make_key(conn, "acme"), make_key(conn, "globex")
    client.post("/v1/responses", json={"response_id": "r1", "prompt": "Q", "response": "A"}, headers=auth(acme))
    client.post("/v1/feedback", json={"type": "like", "response_id": "r1"}, headers=auth(acme))

    assert client.get("/v1/responses/r1", headers=auth(globex)).status_code == 404
    assert client.get("/v1/stats", headers=auth(globex)).get_json()["totals"]["responses"] == 0
    assert client.get("/v1/stats", headers=auth(acme)).get_json()["totals"]["likes"] == 1


def test_feedback_from_another_project_never_touches_the_response(client, conn):
    acme, globex = make_key(conn, "acme"), make_key(conn, "globex")
    client.post("/v1/responses", json={"response_id": "r1", "prompt": "Q", "response": "A"}, headers=auth(acme))
    resp = client.post("/v1/feedback", json={"type": "dislike", "response_id": "r1"}, headers=auth(globex))
    assert resp.get_json()["status"] == "pending"  # waits for a response r1 in globex, which never comes
    assert client.get("/v1/responses/r1", headers=auth(acme)).get_json()["feedback"]["dislikes"] == 0


def test_same_response_id_in_two_projects_are_two_responses(client, conn):
    acme, globex = make_key(conn, "acme"), make_key(conn, "globex")
    client.post("/v1/responses", json={"response_id": "r1", "prompt": "Q", "response": "A"}, headers=auth(acme))
    resp = client.post(
        "/v1/responses", json={"response_id": "r1", "prompt": "Q", "response": "B"}, headers=auth(globex)
    )
    assert resp.get_json()["status"] == "accepted"
    assert client.get("/v1/responses/r1", headers=auth(acme)).get_json()["response"] == "A"
    assert client.get("/v1/responses/r1", headers=auth(globex)).get_json()["response"] == "B"


def test_exports_are_per_project(client, conn):
    acme, globex = make_key(conn, "acme"), make_key(conn, "globex")
    export = client.post("/v1/exports", json={}, headers=auth(acme)).get_json()
    assert client.get(f"/v1/exports/{export['id']}", headers=auth(globex)).status_code == 404
    assert client.get("/v1/exports", headers=auth(globex)).get_json()["exports"] == []
    assert len(client.get("/v1/exports", headers=auth(acme)).get_json()["exports"]) == 1
