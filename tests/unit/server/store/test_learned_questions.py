"""What counts as an answered question, and a question's identity."""

from __future__ import annotations

from server.store.learned_questions import is_repeat, question_id


def test_a_rephrased_repeat_is_a_repeat_and_a_new_topic_is_not() -> None:
    assert is_repeat("Where is my order HK-1?", "where is my order HK-1 please")
    assert not is_repeat("Where is my order HK-1?", "Which payment methods do you accept?")
    assert not is_repeat("", "anything")


def test_a_question_is_the_same_whatever_its_case_spaces_and_punctuation() -> None:
    one = question_id("returns.md", "How long do I have to return a kettle?")
    assert one == question_id("returns.md", "how long do I  have to return a kettle")
    assert one != question_id("refunds.md", "How long do I have to return a kettle?")
    assert len(one) == 16 and int(one, 16) >= 0
