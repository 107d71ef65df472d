"""The real FlexMeasures client from PyPI works against the service unchanged."""

from __future__ import annotations

from flexmeasures_client import FlexMeasuresClient

from tests.live import LiveServer
from tests.world import PASSWORD


async def test_flexmeasures_client_reads_versions_user_and_account(server: LiveServer) -> None:
    client = FlexMeasuresClient(
        host=f"{server.host}:{server.port}",
        email="test_prosumer_user_2@seita.nl",
        password=PASSWORD,
        ssl=False,
    )
    try:
        versions = await client.get_versions()
        user = await client.get_user()
        account = await client.get_account()
    finally:
        await client.close()

    assert versions["server_version"] == "1.0.1"
    assert "v3_0" in versions["server_supports_api_versions"]
    assert user is not None
    assert user["email"] == "test_prosumer_user_2@seita.nl"
    assert user["username"] == "Test Prosumer User 2"
    assert account is not None
    assert account["id"] == user["account_id"]
    assert account["name"] == "Test Prosumer Account"
    assert account["account_roles"][0]["name"] == "Prosumer"
