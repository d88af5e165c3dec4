"""The archive's live endpoint, mounted in a small FastAPI app, on every backend."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from parity.archive import Archive
from parity.archive.http import archive_router
from tests.conformance import PLAY_COLUMNS, frame, play, plays


def test_latest_endpoint(archive: Archive) -> None:
    archive.append(plays, frame([play(1, h, title=str(h)) for h in range(7)], PLAY_COLUMNS))
    app = FastAPI()
    app.include_router(archive_router(archive))
    client = TestClient(app)
    body = client.get("/v1/archive/plays/1?n=5").json()
    assert [f["title"] for f in body["facts"]] == ["6", "5", "4", "3", "2"]
    assert body["complete"] is True and body["key"] == [1]
    assert body["facts"][0]["event_time"].startswith("2024-03-10T06:00:00")
    assert client.get("/v1/archive/plays/2").json()["facts"] == []
    assert client.get("/v1/archive/nope/1").status_code == 404
    bad = client.get("/v1/archive/plays/abc")
    assert bad.status_code == 422 and "member_id" in bad.json()["detail"]
    assert client.get("/v1/archive/plays/1|2").status_code == 422
    assert client.get("/v1/archive/plays/1?n=0").status_code == 422
