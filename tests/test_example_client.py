"""The Python example client of docs/API.md (`examples/python_client.py`, the `gql` library) runs against
the service as a user would run it: multipart upload, the suggestions subscription over a websocket,
accepting a tag, duels and the leaderboard."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.servers import LiveServer
from tests.tokens import auth_header
from tests.uploads import generated_photo, jpeg_bytes, upload_ok, wait_ready

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "python_client.py"


def test_the_gql_example_client_plays_the_whole_flow(server: LiveServer, tmp_path: Path) -> None:
    with server.client() as http:
        for seed in range(5200, 5204):  # photos of one owner never duel each other: four owners
            owner = auth_header(f"example-rival-{seed}")
            wait_ready(http, upload_ok(http, jpeg_bytes(generated_photo(seed)), owner)["id"], owner)
    photo = tmp_path / "harbour.jpg"
    photo.write_bytes(jpeg_bytes(generated_photo(5202)))

    run = subprocess.run([sys.executable, str(EXAMPLE), "--url", server.url, "--photo", str(photo),
                          "--dev-user", "example-player", "--duels", "3"],
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    steps = [json.loads(line) for line in run.stdout.splitlines()]
    by_name = {s["step"]: s for s in steps}
    assert by_name["uploaded"]["status"] == "PROCESSING"
    assert by_name["suggestions"]["status"] == "READY" and by_name["suggestions"]["tags"]
    assert by_name["accepted"]["tags"] == by_name["suggestions"]["tags"][:1]
    votes = [s for s in steps if s["step"] == "voted"]
    assert len(votes) == 3 and all(v["accepted"] for v in votes), run.stdout
    assert "leaderboard" in by_name
