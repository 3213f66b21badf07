"""The answer composed from the evidence: sentences chosen, the tenant's words around them."""

from __future__ import annotations

from retrieval.knowledge import SearchHit
from server.pipeline.composed import (
    Candidate,
    candidates,
    choose_sentences,
    compose_answer,
    focused_passages,
    passage_sentences,
    rank_sentences,
)
from server.voice import BrandVoice
from tests.unit.server.pipeline.helpers import search_hit

DESCALING = """# Descaling kettles and coffee machines

Limescale slows heating, makes coffee taste bitter and can stop a machine working.

## How often

| water | kettles | coffee machines |
|---|---|---|
| soft | every 2 months | every 2 months |
| hard | every 2 weeks | every 3 weeks |

1. Fill the kettle to the **MAX** line with half water, half white vinegar.
2. Boil once, then leave it to stand for 30 minutes.
"""

RETURNS = (
    "You can return any item within 30 days of delivery, for any reason. Items must be "
    "unused and in their original packaging. Gold members have 60 days."
)


def hit(title: str, text: str) -> SearchHit:
    return search_hit(title, text)


def test_passages_read_as_sentences_tables_with_their_header() -> None:
    found = passage_sentences(DESCALING)
    assert "hard (water): kettles every 2 weeks; coffee machines every 3 weeks" in found
    assert "1. Fill the kettle to the MAX line with half water, half white vinegar." in found
    assert not any(s.startswith("#") or "|" in s for s in found)


def test_the_sentence_that_shares_the_question_words_is_chosen() -> None:
    found = candidates([hit("Returns", RETURNS), hit("Descaling", DESCALING)])
    ranked = rank_sentences("How long do I have to return an item?", found)
    assert found[ranked[0]].text.startswith("You can return any item within 30 days")
    chosen = choose_sentences(found, ranked)
    assert chosen[0] == found[ranked[0]] and {c.number for c in chosen} == {1}


def test_meaning_scores_choose_across_languages() -> None:
    found = candidates([hit("Descaling", DESCALING)])
    meaning = [0.9 if "hard (water)" in c.text else 0.2 for c in found]
    ranked = rank_sentences("Tous les combien détartrer ? Eau calcaire.", found, meaning)
    assert [c.text for c in choose_sentences(found, ranked, limit=1)] == [
        "hard (water): kettles every 2 weeks; coffee machines every 3 weeks"
    ]


def test_nothing_is_quoted_when_nothing_bears_on_the_question() -> None:
    found = candidates([hit("Returns", RETURNS)])
    assert rank_sentences("Do you sell umbrellas?", found) == []
    assert choose_sentences(found, []) == []


def test_the_prompt_keeps_the_best_sentences_in_their_passages_and_order() -> None:
    passages = [hit("Returns", RETURNS), hit("Descaling", DESCALING)]
    found = candidates(passages)
    ranked = rank_sentences("How often should I descale with hard water?", found)
    focused = focused_passages(passages, found, ranked, keep=2)
    assert [h.title for h in focused] == ["Descaling"]  # Returns bears on nothing asked
    assert "every 3 weeks" in focused[0].text and len(focused[0].text.splitlines()) == 2
    assert focused_passages(passages, found, [], keep=2) == passages[:1]


def test_the_answer_frames_record_and_passage_in_the_customer_language() -> None:
    voice = BrandVoice(sign_off={"en": "— the team", "fr": "— l'équipe"}, languages=("en", "fr"))
    answer = compose_answer(
        voice,
        "fr",
        unhappy=True,
        record_facts=["Service job SJ-20874: status waiting for part; promised 1 December 2026"],
        sentences=[Candidate(2, "Repairs", "Repairs take 10 working days.")],
        handing_over=False,
    )
    assert answer.cited == (2,) and len(answer.quoted) == 2
    assert answer.text.splitlines()[0] == "Je suis désolé pour ce désagrément."
    assert "Voici ce que je vois dans votre dossier : SJ-20874; 1 December 2026" in answer.text
    assert "« Repairs » (en anglais) : 10 working days [2]" in answer.text
    assert answer.text.endswith("— l'équipe")


def test_without_evidence_the_answer_says_so_and_a_hand_over_adds_nothing() -> None:
    voice = BrandVoice()
    empty = compose_answer(
        voice, "en", unhappy=False, record_facts=[], sentences=[], handing_over=False
    )
    assert "don't have a reliable answer" in empty.text and empty.cited == ()
    handing = compose_answer(
        voice, "en", unhappy=False, record_facts=[], sentences=[], handing_over=True
    )
    assert handing.text == ""


def test_an_answer_in_another_language_than_the_data_quotes_its_key_phrases() -> None:
    voice = BrandVoice(languages=("en", "fr", "zh"))
    answer = compose_answer(
        voice,
        "zh",
        unhappy=False,
        record_facts=["Booking BK-30512: Autobean; to 5 December 2026 18:00; deposit 200.00 EUR"],
        sentences=[Candidate(1, "Returns", "You can return any item within 30 days.")],
        handing_over=False,
    )
    assert "BK-30512; 2026年12月5日; 18:00; 200.00 EUR" in answer.text
    assert "30 days [1]" in answer.text and "You can return" not in answer.text
