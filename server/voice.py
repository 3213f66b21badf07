"""The tenant's voice: how replies sound and the fixed texts the customer reads.

Part of the tenant file (``[voice]`` in ``examples/tenant.toml``): the persona and rules
the prompt opens with, tone guidance per mood, the sign-off, the hand-over and
human-queue messages, and the words around an answer composed from the evidence
(``server/pipeline/composed.py``), each text either one string or a table per language.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


class StrictModel(BaseModel):
    """Unknown keys are refused (a misspelt setting must not pass silently); frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


LocalizedText = str | dict[str, str]
"""A text the customer reads: one string, or a table of language code -> string."""

PLACEHOLDERS = ("{ticket_id}", "{title}")


def _checked_localized(value: LocalizedText, field: str) -> LocalizedText:
    """Language codes are two or three letters; braces only as a known placeholder."""
    texts = {"": value} if isinstance(value, str) else value
    if not texts:
        raise ValueError(f"{field}: give a text, or a table of language code = text")
    for code, text in texts.items():
        if code and not (2 <= len(code) <= 3 and code.isascii() and code.isalpha()):
            raise ValueError(f"{field}: {code!r} is not a language code such as 'en' or 'zh'")
        if not text.strip():
            raise ValueError(f"{field}: the {code or 'default'} text is empty")
        if len(text) > 1000:
            raise ValueError(f"{field}: the {code or 'default'} text is over 1000 characters")
        rest = text
        for placeholder in PLACEHOLDERS:
            rest = rest.replace(placeholder, "")
        if "{" in rest or "}" in rest:
            raise ValueError(
                f"{field}: the placeholders are {{ticket_id}} and {{title}}; found another "
                f"brace in the {code or 'default'} text"
            )
    return value


def localized(value: LocalizedText, language: str, fallbacks: Sequence[str] = ()) -> str:
    """The text for ``language``, else the first fallback language that has one, else
    English, else any: a table never leaves the customer without a message."""
    if isinstance(value, str):
        return value
    for code in (language, *fallbacks, "en"):
        if code in value:
            return value[code]
    return next(iter(value.values()))


DEFAULT_HANDOVER: dict[str, str] = {
    "en": "I'm passing this conversation to a colleague from our support team (ticket "
    "{ticket_id}). They can see everything we discussed and will reply here as soon as "
    "possible.",
    "fr": "Je transmets cette conversation à un collègue de notre équipe support (ticket "
    "{ticket_id}). Il voit tout ce que nous avons échangé et vous répondra ici dès que "
    "possible.",
    "de": "Ich gebe dieses Gespräch an eine Kollegin oder einen Kollegen aus unserem "
    "Support-Team weiter (Ticket {ticket_id}). Sie sehen alles, was wir besprochen haben, "
    "und antworten hier so bald wie möglich.",
    "es": "Paso esta conversación a un compañero de nuestro equipo de soporte (ticket "
    "{ticket_id}). Verá todo lo que hemos hablado y le responderá aquí lo antes posible.",
    "zh": "我已将本次对话转交给我们的客服同事（工单号 {ticket_id}）。他们能看到我们的全部"
    "对话记录，会尽快在这里回复您。",
}
DEFAULT_HUMAN_MODE_ACK: dict[str, str] = {
    "en": "Thank you, I've added your message to this conversation. A colleague from our "
    "support team is looking after it (ticket {ticket_id}) and will reply here shortly.",
    "fr": "Merci, j'ai ajouté votre message à cette conversation. Un collègue de notre "
    "équipe support s'en occupe (ticket {ticket_id}) et vous répondra ici très bientôt.",
    "de": "Danke, ich habe Ihre Nachricht zu diesem Gespräch hinzugefügt. Eine Kollegin "
    "oder ein Kollege aus unserem Support-Team kümmert sich darum (Ticket {ticket_id}) und "
    "antwortet hier in Kürze.",
    "es": "Gracias, he añadido su mensaje a esta conversación. Un compañero de nuestro "
    "equipo de soporte se ocupa de ella (ticket {ticket_id}) y le responderá aquí pronto.",
    "zh": "谢谢，您的消息已加入本次对话。我们的客服同事正在处理（工单号 {ticket_id}），"
    "会很快在这里回复您。",
}


DEFAULT_COMPOSED: dict[str, dict[str, str]] = {
    "apology": {
        "en": "I'm sorry for the trouble.",
        "fr": "Je suis désolé pour ce désagrément.",
        "de": "Das tut mir leid.",
        "es": "Siento mucho las molestias.",
        "zh": "很抱歉给您带来不便。",
    },
    "record_intro": {
        "en": "Here is what I see on your account:",
        "fr": "Voici ce que je vois dans votre dossier :",
        "de": "Das sehe ich in Ihrem Konto:",
        "es": "Esto es lo que veo en su cuenta:",
        "zh": "这是您账户中的相关记录：",
    },
    "kb_intro": {
        "en": 'Our help article "{title}" says:',
        "fr": "Voici ce que dit notre article d'aide « {title} » (en anglais) :",
        "de": "Unser Hilfeartikel „{title}“ sagt dazu (auf Englisch):",
        "es": "Esto es lo que dice nuestro artículo de ayuda «{title}» (en inglés):",
        "zh": "根据我们的帮助文章（英文原文），相关信息如下：",
    },
    "no_answer": {
        "en": "I don't have a reliable answer to that in our help articles or your account. "
        "Could you tell me a little more, or shall I pass you to a colleague?",
        "fr": "Je n'ai pas de réponse fiable à cette question dans nos articles d'aide ni "
        "dans votre dossier. Pouvez-vous m'en dire un peu plus, ou voulez-vous que je vous "
        "passe un collègue ?",
        "de": "Dazu habe ich weder in unseren Hilfeartikeln noch in Ihrem Konto eine "
        "verlässliche Antwort. Können Sie mir etwas mehr dazu sagen, oder soll ich Sie an "
        "eine Kollegin oder einen Kollegen weitergeben?",
        "es": "No tengo una respuesta fiable a eso en nuestros artículos de ayuda ni en su "
        "cuenta. ¿Puede contarme un poco más, o prefiere que le pase con un compañero?",
        "zh": "我们的帮助文章和您的账户记录中都没有这个问题的可靠答案。您能再多说一些情况吗？"
        "或者需要我为您转接同事吗？",
    },
    "closing": {
        "en": "Is there anything else I can help you with?",
        "fr": "Est-ce que je peux vous aider pour autre chose ?",
        "de": "Kann ich Ihnen sonst noch helfen?",
        "es": "¿Puedo ayudarle en algo más?",
        "zh": "请问还有什么可以帮您的吗？",
    },
}
"""The pieces of an answer composed from the evidence when the model's reply fails its
check (``server/pipeline/composed.py``); a tenant overrides any of them per language."""


class ComposedTexts(StrictModel):
    """The tenant's words around an answer composed from the evidence, per language."""

    apology: LocalizedText = Field(default_factory=lambda: dict(DEFAULT_COMPOSED["apology"]))
    record_intro: LocalizedText = Field(
        default_factory=lambda: dict(DEFAULT_COMPOSED["record_intro"])
    )
    kb_intro: LocalizedText = Field(
        default_factory=lambda: dict(DEFAULT_COMPOSED["kb_intro"]),
        description="{title} is replaced by the cited article's title",
    )
    no_answer: LocalizedText = Field(default_factory=lambda: dict(DEFAULT_COMPOSED["no_answer"]))
    closing: LocalizedText = Field(default_factory=lambda: dict(DEFAULT_COMPOSED["closing"]))

    @field_validator("apology", "record_intro", "kb_intro", "no_answer", "closing")
    @classmethod
    def _localized(cls, value: LocalizedText, info: ValidationInfo) -> LocalizedText:
        return _checked_localized(value, f"composed.{info.field_name}")


class ToneByMood(StrictModel):
    """How the reply should sound for the customer's mood: the prompt's tone guidance."""

    frustrated: str = Field(
        "The customer is frustrated. Begin with a sincere apology for the trouble and "
        "acknowledge how they feel in one sentence. Then give clear, concrete next steps. "
        "Do not promote or recommend any products. Keep it short and calm.",
        min_length=1,
        max_length=1000,
    )
    unhappy: str = Field(
        "The customer is unhappy. Apologise briefly for the inconvenience, stay calm and "
        "practical, and focus on solving the problem. Do not promote products.",
        min_length=1,
        max_length=1000,
    )
    positive: str = Field(
        "The customer is in a good mood. Be warm and friendly, and stay helpful.",
        min_length=1,
        max_length=1000,
    )
    neutral: str = Field("Be clear, friendly and efficient.", min_length=1, max_length=1000)


class BrandVoice(StrictModel):
    persona: str = Field(
        "You are the customer support assistant of an online shop.", max_length=2000
    )
    tone: str = Field("friendly, clear and concise", max_length=500)
    do: tuple[str, ...] = ("Answer the question first, then add helpful details.",)
    dont: tuple[str, ...] = ("Do not invent order details, prices or policies.",)
    sign_off: LocalizedText = Field(
        "", description="the reply's last line; one text or a table per language"
    )
    languages: tuple[str, ...] = ("en",)
    handover_message: LocalizedText = Field(
        default_factory=lambda: dict(DEFAULT_HANDOVER),
        description="what the customer reads when a person takes over; one text or a "
        "table per language; {ticket_id} is replaced by the ticket's id",
    )
    human_mode_ack: LocalizedText = Field(
        default_factory=lambda: dict(DEFAULT_HUMAN_MODE_ACK),
        description="the answer to a message while a person owns the conversation",
    )

    composed: ComposedTexts = Field(default_factory=ComposedTexts)
    tone_by_mood: ToneByMood = Field(default_factory=ToneByMood)

    @field_validator("handover_message", "human_mode_ack")
    @classmethod
    def _localized(cls, value: LocalizedText, info: ValidationInfo) -> LocalizedText:
        return _checked_localized(value, str(info.field_name))

    @field_validator("sign_off")
    @classmethod
    def _sign_off(cls, value: LocalizedText) -> LocalizedText:
        if value == "":
            return value  # no sign-off
        return _checked_localized(value, "sign_off")
