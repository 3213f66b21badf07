"""Tenant configuration files: validation, defaults, hot reload, keeping the last good one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.errors import ConfigurationError, InvalidRequestError
from server.tenants import TenantConfigs, parse_tenant_config
from server.voice import localized
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


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[escalation]\norder = ['safety', 'weather']\n", r"escalation\.order"),
        ("[escalation]\norder = ['legal', 'legal']\n", r"escalation\.order"),
        ("[escalation.priorities]\nsafety = 'asap'\n", r"escalation\.priorities"),
        ("[escalation.keywords.frustration]\nen = ['grr']\n", r"escalation\.keywords"),
        ("[escalation.keywords.legal]\nenglish = ['tribunal']\n", r"escalation\.keywords"),
        ("[escalation]\nrates = { usd = 0.9 }\n", r"escalation\.rates"),
        ("[escalation]\nrates = { USD = 0 }\n", r"escalation\.rates"),
        ("[escalation]\ncurrency = 'euro'\n", r"escalation\.currency"),
        ("[voice]\nhandover_message = 'Ticket {ticket}'\n", r"voice\.handover_message"),
        ("[voice.human_mode_ack]\nfrench = 'Merci'\n", r"voice\.human_mode_ack"),
        ("[voice.composed]\nkb_intro = 'Article {name}:'\n", r"voice\.composed\.kb_intro"),
        ("[voice.composed]\nclosing = { en = '' }\n", r"voice\.composed\.closing"),
        ("[voice.tone_by_mood]\nangry = 'Be calm.'\n", r"voice\.tone_by_mood"),
        ("[voice]\nsign_off = { english = 'Bye' }\n", r"voice\.sign_off"),
        ("[recommendations]\nmoods = ['grumpy']\n", r"recommendations\.moods"),
        ("[intents]\nmin_confidence = 1.5\n", r"intents\.min_confidence"),
    ],
)
def test_the_reading_settings_are_validated_with_the_key_named(text: str, key: str) -> None:
    with pytest.raises(InvalidRequestError, match=key):
        parse_tenant_config(text, "x.toml")


def test_voice_texts_per_language_and_mood() -> None:
    config = parse_tenant_config(
        "[voice]\nsign_off = { en = '— the team', fr = \"— l'équipe\" }\n"
        "[voice.tone_by_mood]\nfrustrated = 'Say sorry first.'\n"
        "[voice.composed]\nkb_intro = { en = 'Our article {title} says:' }\n",
        "x.toml",
    )
    voice = config.voice
    assert localized(voice.sign_off, "fr") == "— l'équipe"
    assert voice.tone_by_mood.frustrated == "Say sorry first."
    assert voice.tone_by_mood.neutral  # the defaults fill what the file leaves out
    assert localized(voice.composed.kb_intro, "de") == "Our article {title} says:"
    assert localized(voice.composed.closing, "zh").endswith("吗？")


def test_hand_over_texts_per_language_and_the_defaults() -> None:
    config = parse_tenant_config(
        "[voice.handover_message]\nen = 'A colleague has ticket {ticket_id}.'\n"
        "fr = 'Un collègue a le ticket {ticket_id}.'\n",
        "x.toml",
    )
    assert localized(config.voice.handover_message, "fr").startswith("Un collègue")
    assert localized(config.voice.handover_message, "zh").startswith("A colleague")  # English
    defaults = parse_tenant_config("", "x.toml").voice
    for language in ("en", "fr", "de", "es", "zh"):
        assert "{ticket_id}" in localized(defaults.handover_message, language)


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
