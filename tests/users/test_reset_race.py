"""One set-password link used twice at once, on a real server with real sessions: the new
password is hashed with no lock held, so the row is checked again under its lock afterwards,
and exactly one of the two uses wins."""

from __future__ import annotations

import asyncio

import httpx

from tests.databases import Backend
from tests.live import live_server
from tests.smtp import smtp_server
from tests.users.test_invite_and_reset import token_of

EMAIL = "test_dummy_user_3@seita.nl"


async def test_a_link_used_twice_at_once_sets_one_password(backend: Backend) -> None:
    async with (
        smtp_server() as mail,
        live_server(backend, extra_env={"SMTP_URL": mail.url}) as server,
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
    ):
        asked = await http.post("/api/requestPasswordReset", json={"email": EMAIL})
        assert asked.status_code == 200
        token = token_of((await mail.wait_for_message()).link)
        passwords = ("first new password", "second new password")
        answers = await asyncio.gather(
            *(
                http.post("/api/resetPassword", json={"token": token, "password": password})
                for password in passwords
            )
        )
        statuses = sorted(r.status_code for r in answers)
        logins = [
            await http.post("/api/requestAuthToken", json={"email": EMAIL, "password": p})
            for p in passwords
        ]
    assert statuses == [200, 401], [r.text for r in answers]
    winner = passwords[[r.status_code for r in answers].index(200)]
    assert [r.status_code for r in logins] == [
        200 if password == winner else 401 for password in passwords
    ]
