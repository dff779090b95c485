"""The cluster settings the plugin decodes."""

from __future__ import annotations

import pytest

from corral_sdk.config import decode_settings
from corral_sdk.errors import Invalid, SettingsError
from corral_slurm.config import SlurmConfig


def test_defaults() -> None:
    config = decode_settings({}, SlurmConfig)
    assert config == SlurmConfig()
    assert (config.status_format, config.use_sacct, config.command_prefix) == ("auto", True, "")


def test_settings_as_the_kernel_decodes_them() -> None:
    config = decode_settings(
        {
            "status_format": "json",
            "use_sacct": "false",
            "command_prefix": "module load slurm",
            "sbatch_options": {"constraint": "ib", "requeue": None},
            "command_timeout_seconds": "30",
        },
        SlurmConfig,
        prefix="scheduler",
    )
    assert config.status_format == "json"
    assert config.use_sacct is False
    assert config.sbatch_options == {"constraint": "ib", "requeue": None}
    assert config.command_timeout_seconds == 30.0


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"status_format": "yaml"}, "scheduler.status_format"),
        ({"scripts": "x"}, "scheduler.scripts"),
        # gone since sbatch reads the script from its standard input: no file is written
        ({"script_dir": ".corral/jobs"}, "scheduler.script_dir"),
    ],
)
def test_unknown_keys_and_values_name_the_key(settings: dict[str, object], key: str) -> None:
    with pytest.raises(SettingsError) as info:
        decode_settings(settings, SlurmConfig, prefix="scheduler")
    assert info.value.field == key


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"command_prefix": "a\nrm -rf ~"}, "command_prefix"),
        ({"sbatch_options": {"--constraint": "ib"}}, "sbatch_options"),
        ({"sbatch_options": {"comment": "a\nb"}}, "sbatch_options"),
        ({"command_timeout_seconds": 0}, "command_timeout_seconds"),
        ({"config_dir": "etc/slurm"}, "config_dir"),
    ],
)
def test_invalid_settings_name_the_field(settings: dict[str, object], field: str) -> None:
    with pytest.raises(Invalid) as info:
        SlurmConfig(**settings)  # type: ignore[arg-type]
    assert info.value.field == field
