"""Tenant configuration files: validation, defaults, hot reload, keeping the last good one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.errors import ConfigurationError, InvalidRequestError
from server.tenants import TenantConfigs, parse_tenant_config
from tests.servers import REPO


def test_the_demo_tenant_file_is_valid() -> None:
    text = (REPO / "examples" / "tenant.toml").read_text(encoding="utf-8")
    config = parse_tenant_config(text, "examples/tenant.toml")
    assert config.voice.persona and config.voice.sign_off
    assert config.escalation.refund_limit is not None


def test_bad_files_name_the_problem() -> None:
    with pytest.raises(InvalidRequestError, match="not valid TOML"):
        parse_tenant_config("[voice\n", "x.toml")
    with pytest.raises(InvalidRequestError, match=r"escalation\.negative_turns"):
        parse_tenant_config("[escalation]\nnegative_turns = -1\n", "x.toml")
    with pytest.raises(InvalidRequestError, match=r"voice\.colour"):
        parse_tenant_config("[voice]\ncolour = 'red'\n", "x.toml")
    with pytest.raises(InvalidRequestError, match="tenant"):
        TenantConfigs(Path("/tmp")).path_for("../etc")


def test_edits_apply_without_restart_and_a_broken_edit_keeps_the_last_good(tmp_path: Path) -> None:
    configs = TenantConfigs(tmp_path)
    assert configs.get("shop").voice.tone  # defaults without a file
    configs.install("shop", "[voice]\ntone = 'formal'\n", "shop.toml")
    assert configs.get("shop").voice.tone == "formal"
    path = configs.path_for("shop")
    path.write_text("[voice]\ntone = 'playful'\n", encoding="utf-8")
    os.utime(path, ns=(1, 2_000_000_000_000_000_000))
    assert configs.get("shop").voice.tone == "playful"
    path.write_text("[voice\n", encoding="utf-8")
    os.utime(path, ns=(1, 3_000_000_000_000_000_000))
    assert configs.get("shop").voice.tone == "playful"
    fresh = TenantConfigs(tmp_path)
    with pytest.raises(ConfigurationError):
        fresh.get("shop")
