from __future__ import annotations

from pathlib import Path

import pytest

from corral_core.settings import load_settings
from corral_sdk.errors import SettingsError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "corral.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_embedded_mode(tmp_path: Path) -> None:
    settings = load_settings(None, {"XDG_DATA_HOME": str(tmp_path)})
    assert settings.data_dir == str(tmp_path / "corral")
    assert settings.database_url == f"sqlite:///{tmp_path / 'corral' / 'corral.db'}"
    assert settings.mode == "embedded"
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8080)
    assert settings.public_url == "http://127.0.0.1:8080"


def test_unknown_key_names_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, '[database]\nuri = "sqlite:///x"\n')
    with pytest.raises(SettingsError) as error:
        load_settings(path, {})
    assert error.value.message == f"unknown key database.uri in {path}"
    assert error.value.field == "database.uri"


def test_unknown_top_level_key_and_wrong_type(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="unknown key colour"):
        load_settings(write(tmp_path, 'colour = "red"\n'), {})
    with pytest.raises(SettingsError, match=r"reconcile\.sweep_interval: expected `float`"):
        load_settings(write(tmp_path, '[reconcile]\nsweep_interval = "soon"\n'), {})
    with pytest.raises(SettingsError, match=r"logging\.level: invalid enum value 'loud'"):
        load_settings(write(tmp_path, '[logging]\nlevel = "loud"\n'), {})


def test_environment_overrides_the_file_by_structure(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nport = 9000\n[plugins.aws]\nregion = "us-east-1"\n')
    settings = load_settings(
        path,
        {
            "CORRAL_SERVER_PORT": "9100",
            "CORRAL_SERVER_PUBLIC_URL": "https://corral.example.org",
            "CORRAL_DATABASE_URL": "postgresql://corral@db/corral",
            "CORRAL_BROKER_URL": "redis://cache:6379/1",
            "CORRAL_STRICT_PLUGINS": "1",
            "CORRAL_DENY_PLUGINS": "corral-a, b",
            "CORRAL_PLUGINS__AWS__PROFILE": "lab",
        },
    )
    assert settings.server.port == 9100
    assert settings.public_url == "https://corral.example.org"
    assert settings.strict_plugins is True
    assert settings.deny_plugins == ["corral-a", "b"]
    assert settings.plugins == {"aws": {"region": "us-east-1", "profile": "lab"}}
    assert settings.mode == "distributed"


def test_unknown_environment_variable_is_refused() -> None:
    with pytest.raises(SettingsError, match="unknown environment variable CORRAL_DATABASE_URI"):
        load_settings(None, {"CORRAL_DATABASE_URI": "x"})
    with pytest.raises(SettingsError, match="CORRAL_PLUGINS__<NAME>__<KEY>"):
        load_settings(None, {"CORRAL_PLUGINS__AWS": "x"})


def test_config_file_from_environment_and_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "data_dir = '/srv/corral'\n")
    assert load_settings(None, {"CORRAL_CONFIG": str(path)}).data_dir == "/srv/corral"
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", {})
    with pytest.raises(SettingsError, match=r"line 1, column 8"):
        load_settings(write(tmp_path, "[server\n"), {})


def test_example_file_lists_every_setting_with_its_default() -> None:
    import msgspec

    from corral_core.settings import Settings

    example = Path(__file__).parents[2] / "config" / "corral.example.toml"
    settings = load_settings(example, {})
    expected = Settings(data_dir="~/.local/share/corral")
    assert settings == expected
    import tomllib

    table = tomllib.loads(example.read_text())
    for field in msgspec.structs.fields(Settings):
        if field.name == "plugins":
            continue
        assert field.name in table, f"config/corral.example.toml lacks {field.name}"
        value = getattr(expected, field.name)
        if isinstance(value, msgspec.Struct):
            assert set(table[field.name]) == set(value.__struct_fields__), field.name
