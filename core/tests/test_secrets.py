from __future__ import annotations

import stat

import pytest

from corral_core.secrets import SecretBox
from corral_core.testing import TestDeployment
from corral_sdk.errors import CorralError, SettingsError


def test_round_trip_and_key_file(deployment: TestDeployment) -> None:
    settings = deployment.settings(CORRAL_SECRETS_KEY="", CORRAL_DATABASE_URL="")
    box = SecretBox.from_settings(settings)
    token = box.encrypt("aws-secret-access-key")
    assert "aws-secret" not in token
    assert box.decrypt(token) == "aws-secret-access-key"
    key_file = settings.data_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert SecretBox.from_settings(settings).decrypt(token) == "aws-secret-access-key"
    other = SecretBox(SecretBox.generate_key())
    with pytest.raises(CorralError, match="could not be decrypted"):
        other.decrypt(token)


def test_shared_database_needs_a_configured_key(deployment: TestDeployment) -> None:
    settings = deployment.settings(
        CORRAL_SECRETS_KEY="", CORRAL_DATABASE_URL="postgresql://x@localhost/y"
    )
    with pytest.raises(SettingsError, match=r"secrets\.key must be set"):
        SecretBox.from_settings(settings)
    with pytest.raises(SettingsError, match="not a valid key"):
        SecretBox("short")
