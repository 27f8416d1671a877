"""What the web app names without extra calls: who shared an item ("Shared with me"), what a public link shows
(OpenLink's root, for every permission, file drops included), and the account's activity filtered by the server."""

from __future__ import annotations

import datetime as dt

from tests.share.support import LINKS, User, Visitor
from tests.support.mesh import Running


def test_shares_name_their_owner(share_mesh: Running) -> None:
    a, b = User(share_mesh, "a"), User(share_mesh, "b")
    a.ok("PATCH", "/api/v1/me", json={"display_name": "Ada Owner"})
    folder = a.folder("Team")
    a.share(folder, b, "viewer")
    [incoming] = b.ok("GET", "/api/v1/shares/incoming")["shares"]
    assert incoming["ownerEmail"] == a.email and incoming["ownerDisplayName"] == "Ada Owner"
    assert incoming["node"]["name"] == "Team"
    [outgoing] = a.ok("GET", "/api/v1/shares/outgoing")["shares"]
    assert outgoing["ownerEmail"] == a.email and outgoing["granteeEmail"] == b.email


def test_open_link_names_the_root_for_every_permission(share_mesh: Running) -> None:
    a = User(share_mesh, "a")
    folder = a.folder("Drop box")
    file_id = a.upload("report.pdf", b"%PDF-1.7 twelve", folder)["node"]["id"]
    v = Visitor(share_mesh)
    drop = a.link(folder, "upload", password="drop pass 1")
    r = v.open(drop["token"], "drop pass 1")
    assert r.status_code == 200, r.text
    root = r.json()["root"]
    assert (root["id"], root["name"], root["kind"]) == (folder, "Drop box", "NODE_KIND_FOLDER")
    assert root.get("parentId", "") == ""  # nothing above the link's root
    assert v.children(drop["token"]).status_code == 403  # still sees nothing inside
    drop_session = v.headers()
    one = a.link(file_id, "view")
    root = v.open(one["token"]).json()["root"]
    assert (root["name"], int(root["size"])) == ("report.pdf", 15)
    # The REST route behind it: the session is needed for a password link; a revoked link is a 404.
    assert v.http.get(f"{LINKS}/{drop['token']}/root").status_code == 401
    assert v.http.get(f"{LINKS}/{drop['token']}/root", headers=drop_session).json()["name"] == "Drop box"
    a.ok("DELETE", f"/api/v1/links/{one['id']}")
    assert v.http.get(f"{LINKS}/{one['token']}/root").status_code == 404


def test_my_activity_is_filtered_by_kind_and_time_on_the_server(share_mesh: Running) -> None:
    a = User(share_mesh, "a")
    a.ok("PATCH", "/api/v1/me", json={"display_name": "Renamed"})
    events = a.activity()
    kinds = {e["kind"] for e in events}
    assert {"register", "login.ok", "profile.updated"} <= kinds
    only = a.ok("GET", "/api/v1/me/activity", params={"kind_prefixes": ["profile.", "nothing."]})["events"]
    assert [e["kind"] for e in only] == ["profile.updated"]
    newest = max(dt.datetime.fromisoformat(e["time"].replace("Z", "+00:00")) for e in events)
    later = (newest + dt.timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    assert a.ok("GET", "/api/v1/me/activity", params={"start_time": later}).get("events", []) == []
    assert len(a.ok("GET", "/api/v1/me/activity", params={"end_time": later})["events"]) == len(events)
    r = a.http.get("/api/v1/me/activity", params={"start_time": later, "end_time": events[-1]["time"]})
    assert r.status_code == 400 and "end_time" in r.text


def test_a_browser_refused_a_link_download_lands_on_the_links_page(share_mesh: Running) -> None:
    a = User(share_mesh, "a")
    folder = a.folder("Limited")
    file_id = a.upload("once.txt", b"only once", folder)["node"]["id"]
    link = a.link(folder, "download", max_downloads=1)
    v = Visitor(share_mesh)
    url = f"{LINKS}/{link['token']}/files/{file_id}/content"
    html = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    first = v.http.get(url, headers=html)
    assert first.status_code == 200 and first.content == b"only once"
    # Past the limit: a browser is sent to the app's page for the link, saying why; a script keeps the JSON error.
    second = v.http.get(url, headers=html)
    assert second.status_code == 303, second.text
    assert second.headers["location"] == f"/s/{link['token']}?refused=403" and second.content == b""
    scripted = v.http.get(url)
    assert scripted.status_code == 403 and scripted.json()["code"] == 8  # RESOURCE_EXHAUSTED, the limit
    a.ok("DELETE", f"/api/v1/links/{link['id']}")
    gone = v.http.get(url, headers=html)
    assert (gone.status_code, gone.headers["location"]) == (303, f"/s/{link['token']}?refused=404")
    # Other routes are untouched: an unknown API path stays a JSON 404 for a browser too.
    assert v.http.get("/api/v1/public/links/x/children", headers=html).status_code == 404
