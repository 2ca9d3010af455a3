"""The app as a whole: login, upload cap, the element ids of the browser tests' contract, the tab labels
and event concurrency, read back from a launched studio's own config."""

# ruff: noqa: F811  (pytest fixtures imported from test_studio_support are parameters here)

from __future__ import annotations

from typing import Any

from test_studio_support import RedisServer, free_port, make_studio, redis_server  # noqa: F401

CONTRACT_IDS = (  # ARCHITECTURE.md, "Studio element ids"
    "convert-input", "convert-voice", "convert-transpose", "convert-f0-method", "convert-backend", "convert-precision",
    "convert-button", "convert-cancel", "convert-output", "convert-log", "convert-error", "convert-history",
    "voices-upload", "voices-name", "voices-create", "voices-table", "voices-delete", "engines-table",
    "engines-precision", "engines-calibration", "engines-rebuild", "engines-log", "calibration-upload",
    "calibration-name", "calibration-create", "calibration-summary", "workers-table", "jobs-failed", "jobs-retry")


def test_app_login_upload_cap_ids_and_concurrency(make_studio: Any, redis_server: RedisServer) -> None:
    import httpx

    from studio.app import launch

    studio = make_studio(redis_server.db_url(4), max_blob_mb="5")
    studio.auth = [("ann", "pw")]
    port = free_port()
    demo = launch(studio, port=port, host="127.0.0.1", block=False)
    try:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/config").status_code == 401
        assert httpx.post(f"{base}/login", data={"username": "ann", "password": "nope"}).status_code == 400
        with httpx.Client() as client:
            assert client.post(f"{base}/login", data={"username": "ann", "password": "pw"}).status_code == 200
            config = client.get(f"{base}/config").json()
    finally:
        demo.close()
    assert config["max_file_size"] == 5 * 2**20
    ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    assert set(CONTRACT_IDS) <= ids, set(CONTRACT_IDS) - ids
    tabs = [c["props"].get("label") for c in config["components"] if c.get("type") == "tabitem"]
    assert tabs == ["Convert", "Voices", "Engines", "Calibration", "Workers"]
    streaming = {f.name: f.concurrency_limit for f in demo.fns.values() if f.name in ("convert", "rebuild")}
    assert streaming == {"convert": None, "rebuild": None}  # people's jobs are not serialised by Gradio
