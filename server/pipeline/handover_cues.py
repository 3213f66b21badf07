"""What a customer's words say about handing over: harm, lawyers, disputed payments,
personal data, asking for a person, "that did not help", and asking for money back.

Each cue is a set of phrases per language (English, French, German, Spanish, Chinese),
matched on every message whatever language was detected: customers mix languages, and a
short message is often detected wrongly. The phrases describe *events and demands*, not
topics: "my kettle sparked and burned my hand" is safety, "is the kettle safe for
children?" is a question the help centre answers; "my lawyer will be in touch" is legal,
"I'm a lawyer, can I have an invoice?" is not. A tenant adds its own phrases per reason
and language (``[escalation.keywords]``); they are matched as words, case-insensitively.

The tables themselves are in ``handover_phrases.py``; the decision that uses these cues
is ``escalation.py``. ``bench/reading.py`` measures them, with the reason head that reads
the same reasons from a message's meaning (``models/classifiers/handover_head.py``), on
conversations written blind (``datasets/escalation``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

from server.pipeline.handover_phrases import (
    ADVICE_FOLLOWED,
    CHARGEBACK,
    DATA_ACTIONS,
    DATA_TERMS,
    EARLIER_ADVICE,
    EXPLICIT_REQUEST,
    FAILED_ANSWER,
    LEGAL,
    PRIVACY,
    REFUND_WORDS,
    SAFETY,
    WORKED,
)

_I = re.IGNORECASE

BUILT_IN = {
    "safety": SAFETY,
    "legal": LEGAL,
    "chargeback": CHARGEBACK,
    "privacy": PRIVACY,
    "explicit_request": EXPLICIT_REQUEST,
}
"""The built-in phrases of the reasons a tenant can add phrases to."""


def _alternation(patterns: list[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), _I)


def _tenant_phrase(phrase: str) -> str:
    """A tenant's phrase as a literal, word-bounded where it starts or ends with a letter
    of an alphabetic script (Chinese has no spaces to bound)."""
    escaped = re.escape(phrase.strip())
    first, last = phrase.strip()[0], phrase.strip()[-1]
    start = r"\b" if first.isascii() and first.isalnum() else ""
    end = r"\b" if last.isascii() and last.isalnum() else ""
    return f"{start}{escaped}{end}"


@lru_cache(maxsize=256)
def _compiled(reason: str, extra: tuple[tuple[str, tuple[str, ...]], ...]) -> re.Pattern[str]:
    patterns = [p for table in BUILT_IN[reason].values() for p in table]
    patterns += [_tenant_phrase(p) for _, phrases in extra for p in phrases]
    return _alternation(patterns)


_PRIVACY_DATA = _alternation(list(DATA_TERMS.values()))
_PRIVACY_ACTION = _alternation(list(DATA_ACTIONS.values()))
_FAILED = _alternation([p for table in FAILED_ANSWER.values() for p in table])
_REFUND = _alternation(list(REFUND_WORDS.values()))
_EARLIER_ADVICE = _alternation(list(EARLIER_ADVICE))
_ADVICE_FOLLOWED = _alternation(list(ADVICE_FOLLOWED))
_WORKED_RE = re.compile(WORKED, _I)
_POLICY_QUESTION = _alternation(
    [
        r"\b(?:polic(?:y|ies)|terms|rules|how (?:do|does|long)|do you (?:offer|give|do))\b",
        r"\b(?:politique|conditions|règles|comment (?:fonctionne|se passe|marche)|"
        r"proposez-vous)\b",
        r"\b(?:richtlinie|bedingungen|wie funktioniert)\b",
        r"政策|规定|规则|条件|怎么(?:退|算)|如何退",
    ]
)
_QUESTION = re.compile(
    r"[?？]|^\s*(?:what|how|which|do you|does|is|are|can|quel\w*|comment|est-ce)\b|请问|是否|吗",
    _I,
)
_DEMAND = _alternation(
    [
        r"\bi (?:want|need|demand|expect|insist)\b|\b(?:give|send|pay) me\b|\brefund me\b",
        r"\bje (?:veux|demande|exige|souhaite)\b|\brembourse[zr]?-moi\b|"
        r"\b(?:merci de|veuillez) (?:me )?rembourser\b|\bplease refund\b",
        r"\bich (?:will|verlange|fordere)\b",
        r"我要|给我退|退给我|必须退",
    ]
)


_HYPOTHETICAL = _alternation(
    [
        r"\bhow (?:do|does|would|will) [^.?!]{0,40}\bwork\b|\bwhat happens (?:if|when)\b",
        r"\b(?:just curious|out of curiosity|hypothetically)\b|\bif (?:someone|somebody|a "
        r"customer|anyone) (?:\w+ ){0,3}(?:disputed|disputes|sued|sues|charged back|reversed)\b",
        r"\bif (?:a|an|the|my) (?:buyer|customer|client|guest|seller|member|user) (?:ever )?"
        r"(?:files|filed|opens|opened|raises|raised|starts|started|makes|made|does|did|"
        r"issues|issued) (?:a |an )?(?:chargeback|dispute|claim|complaint|lawsuit)",
        r"\b(?:par curiosité|simple curiosité|hypothétiquement)\b",
        r"\bcomment (?:fonctionne|marche|se passe)|\bque se passe-t-il (?:si|quand|en cas)\b",
        r"\bquels sont (?:les|mes) recours\b|\bavant (?:d['’]acheter|d['’]acquérir|de (?:signer|"
        r"souscrire|commander|réserver))\b|\bbefore (?:I|we) (?:buy|sign|book|order|subscribe)\b",
        r"\bwie funktioniert\b|\bwas passiert,? wenn\b",
        r"有什么影响|会怎么样|会有什么|的话会|是怎么处理|一般怎么|好奇问一下|如果有人|"
        r"(?:支持|接受|允许)[^，。！？]{0,4}(?:拒付|争议|申诉)[^。！!]{0,12}(?:吗|？|\?)|"
        r"只是了解一下|随便问问|(?:如果|假如|要是)[^。！？]{0,20}(?:拒付|争议)[^。！？]{0,20}"
        r"(?:会怎么|怎么处理|会不会)",
        r"\bdo you (?:accept|allow|support|take) (?:chargebacks|disputes|card disputes)\b",
    ]
)
"""A question about how something works in general ("how do chargebacks work for
sellers?", "just curious: if a customer disputed a payment..."): the topic's words are not
the customer's own dispute or lawsuit."""
HYPOTHETICAL_EXEMPT = frozenset({"chargeback", "legal"})

_GENERAL_QUESTION = {
    "safety": _alternation(
        [
            r"\bis (?:it|this|that|the \w+|they) (?:safe|dangerous)\b|\bsafe (?:for|to|with)\b"
            r"[^.!]*\?|\b(?:could|can|would) (?:it|this|they) (?:catch fire|burn|explode|hurt)\b",
            r"\b(?:est-ce|c['’]est) (?:que c['’]est )?(?:dangereux|sans danger)\b|"
            r"\b(?:sans danger|risque)\b[^.!]*\?",
            r"会不会|是否安全|安全吗|有没有危险|危险吗|认证吗",
        ]
    ),
    "privacy": _alternation(
        [
            r"\b(?:do|will|would|can|how do) you (?:share|sell|pass on|store|keep|use|give|"
            r"protect|handle)\b",
            r"\b(?:partagez|vendez|transmettez|conservez|stockez|utilisez)-vous\b",
            r"你们(?:会|是否|会不会)[^。！？]{0,20}(?:共享|分享|卖|提供|给|保存|存储|使用)|"
            r"(?:怎么|如何)(?:保存|存储|保护|使用|处理)[^。！？]{0,10}(?:信息|数据|资料)|"
            r"会不会(?:提供|共享|卖|泄露)给",
        ]
    ),
}
"""A question whether a product is safe or how personal data is handled ("is the heater
safe for a nursery?", 你们会把我的个人信息共享给第三方吗？): a help-centre question, unless
the same message also reports the event ("it burned my hand, is it safe to keep?")."""

_QUOTED_NAME = re.compile(
    r"「[^」]{1,20}」|『[^』]{1,20}』|“[^”]{1,30}”|\"[^\"]{1,30}\"|«[^»]{1,30}»"
)
"""A short quoted span names a product, a film or a game's item: 「律师」技能, « Explosion
de saveurs », "Lawyer's Choice": its words are not the customer's own event."""


def _without_names(message: str) -> str:
    return _QUOTED_NAME.sub(" ", message)


_CONDITIONAL_HARM = _alternation(
    [
        r"\bif (?:a|an|the|my|your|it|this|one) [^.?!]{0,40}\bever\b",
        r"\bsi jamais\b",
        r"万一",
    ]
)
"""Harm put as a condition ("if an e-scooter battery ever overheated, is that covered?"):
the event's words describe what might happen, not what did."""


def is_hypothetical(reason: str, message: str) -> bool:
    """A general question about ``reason``'s topic, not the customer's own case: how
    chargebacks or lawsuits work, harm put as a condition, whether a product is safe or
    how data is handled (the last two only when the message reports no such event)."""
    if reason in HYPOTHETICAL_EXEMPT:
        return _HYPOTHETICAL.search(message) is not None
    if reason == "safety" and _CONDITIONAL_HARM.search(message):
        return True
    question = _GENERAL_QUESTION.get(reason)
    if question is None or question.search(message) is None:
        return False
    return _compiled(reason, ()).search(_without_names(message)) is None


_NEGATED = re.compile(
    r"(?:\b(?:no|not|never|without|nor|neither|nobody|no one|no-one|pas|sans|ni|aucune?|"
    r"jamais|personne)\b(?:\s+(?:de|d['’]))?\s*(?:[\w'’-]+\s+)?"
    r"|(?:也|并|还|都)?(?:没有?|无|未|不是)(?:人|任何)?)$",
    _I,
)
"""A negation just before a phrase, at most one word away: "no smoke", "pas de fumée ni
d'odeur", "no one's hurt", "也没人受伤"."""
_DISAVOWED = re.compile(
    r"(?:\b(?:don'?t|do not|doesn'?t|not|never) (?:want|wish|intend|plan|mean|going|trying) to"
    r"|\bne (?:veux|voulons|souhaite|compte|vais|cherche) (?:pas|nullement)(?: à)?)"
    r"\s*(?:[\w'’-]+\s+)?$|(?:不是要|不想|并不打算|没打算|不打算)[\u4e00-\u9fff]{0,6}$",
    _I,
)
"""A threat disowned just before its words: "I don't want to sue", "je ne veux pas porter
plainte", 我不是要投诉. "I will not hesitate to take legal action" is no such thing."""
_HARM_DENIED = frozenset({"safety"})
"""The reasons whose phrases a plain negation cancels: "no smoke or smell, just no
connection" reports no danger."""
_THREAT_DISOWNED = frozenset({"legal", "chargeback"})
"""The reasons whose phrases only a disowning cancels ("I don't want to file a
chargeback"): "not" alone is too often part of the threat ("not hesitate to sue")."""


_RISK_ASKED = re.compile(
    r"(?:\b(?:risk|danger|chance|possibility) of (?:an? |getting |being )?|\brisque "
    r"(?:de |d['’])(?:une? )?|会不会|有没有可能|会)$",
    _I,
)
_TO_QUESTION_MARK = re.compile(r"[^.!。！]*[?？]")
"""Harm asked about as a risk ("is there any risk of an electric shock from the
handlebars?", 雨天骑会不会触电？): a help-centre question about the product, not an event."""


def _matches(reason: str, text: str, frozen: tuple[tuple[str, tuple[str, ...]], ...]) -> bool:
    """A phrase of ``reason`` in ``text`` that no negation cancels."""
    for match in _compiled(reason, frozen).finditer(text):
        before = text[max(0, match.start() - 40) : match.start()]
        if reason in _HARM_DENIED and _NEGATED.search(before):
            continue
        if (
            reason in _HARM_DENIED
            and _RISK_ASKED.search(before)
            and _TO_QUESTION_MARK.match(text, match.end())
        ):
            continue
        if reason in _THREAT_DISOWNED and _DISAVOWED.search(before):
            continue
        return True
    return False


def denies(reason: str, message: str) -> bool:
    """The message names ``reason``'s harm only to deny it ("no smoke, no smell", 也没人受伤):
    the reason head's reading of the topic must not hand it over either."""
    if reason not in _HARM_DENIED | _THREAT_DISOWNED:
        return False
    text = _without_names(message)
    return _compiled(reason, ()).search(text) is not None and not _matches(reason, text, ())


def says(reason: str, message: str, extra: Mapping[str, tuple[str, ...]] | None = None) -> bool:
    """Whether ``message`` carries ``reason``'s phrases (built-in plus ``extra``, the
    tenant's phrases by language); quoted names do not count, nor harm the message denies."""
    frozen = tuple(sorted((extra or {}).items()))
    if is_hypothetical(reason, message):
        return False
    text = _without_names(message)
    if _matches(reason, text, frozen):
        return True
    if reason == "privacy":  # a demand about one's data: a data term and an action on it
        return bool(_PRIVACY_DATA.search(text) and _PRIVACY_ACTION.search(text))
    return False


def says_it_did_not_help(message: str) -> bool:
    """The customer says an answer or a fix did not help ("still not working", 没用), or
    reports following our step without saying it worked ("restarted it as you said")."""
    if _FAILED.search(message) is not None:
        return True
    return _ADVICE_FOLLOWED.search(message) is not None and _WORKED_RE.search(message) is None


def says_it_worked(message: str) -> bool:
    """The customer says a fix worked or thanks us ("oh wait, it works now", « ça marche,
    merci »), without also saying something did not help ("thanks, but still no sound")."""
    return _WORKED_RE.search(message) is not None and _FAILED.search(message) is None


_FEELING = _alternation(
    [
        r"\b(?:disappoint\w*|unhappy|upset|annoy\w*|irritat\w*|fed up|not (?:impressed|happy|"
        r"pleased|satisfied|amused)|let down)\b",
        r"\b(?:déçue?s?|décevant\w*|mécontente?s?|agacée?s?|énervée?s?|pas (?:contente?s?|"
        r"satisfaite?s?|ravie?s?))\b",
        r"失望|不满意|不满|不开心|郁闷|生气|不爽|烦死|心累|无奈",
    ]
)


def tells_a_feeling(message: str) -> bool:
    """The message names how the customer feels ("really disappointing", 挺失望的): a
    failed fix told with feeling is a mood as well as a verdict."""
    return _FEELING.search(message) is not None


def refers_to_earlier_advice(message: str) -> bool:
    """The customer points at advice we gave before ("as you said", 你们给的方法)."""
    return _EARLIER_ADVICE.search(message) is not None


def asks_about_policy(message: str) -> bool:
    """A question about the rules ("what is your refund policy?", 退货政策是什么样的？); "as
    your conditions say, please refund me" is a demand that cites them."""
    return (
        _POLICY_QUESTION.search(message) is not None
        and _QUESTION.search(message) is not None
        and _DEMAND.search(message) is None
    )


_SOMEONE_ELSE_PAYS = _alternation(
    [
        r"\b(?:employer|company|work|boss|insurer|insurance(?: company)?|school|university|"
        r"firm) (?:is |are |will |would |should |can |does |do )?(?:reimburs\w*|refund\w*|"
        r"pays? (?:me |us )?back|paying (?:me |us )?back|covers?|covering)\b|"
        r"\b(?:reimbursed|paid back|refunded|covered) by (?:my|the|our) (?:employer|company|"
        r"work|boss|insurer|insurance)\b",
        r"\b(?:employeur|entreprise|boîte|assurance|mutuelle|école) (?:me |nous )?"
        r"(?:rembourse\w*|prend\w* en charge)",
        r"(?:公司|单位|保险|医保)[^，。！？]{0,4}(?:报销|理赔)",
    ]
)
"""Money back from someone else ("my employer is reimbursing me", 公司报销): the customer
wants an invoice, not a refund from us."""


_DEMANDS_OUR_REFUND = _alternation(
    [
        r"\b(?:refund me|(?:i want|i need|i demand|give me) (?:a |my |the )?(?:full )?refund|"
        r"you (?:must|should|will|need to) refund)\b",
        r"\b(?:rembourse[zr]-moi|je (?:veux|demande|exige) (?:un|le|mon) remboursement)\b",
        r"退给我|给我退|必须退",
    ]
)


def paid_back_by_someone_else(message: str) -> bool:
    """The money back the message speaks of comes from a third party ("send me an invoice,
    my employer reimburses it"), and nothing in it demands a refund from us."""
    return (
        _SOMEONE_ELSE_PAYS.search(message) is not None
        and _DEMANDS_OUR_REFUND.search(message) is None
    )


def asks_for_money_back(message: str) -> bool:
    """The message asks for a refund or money back, in any language the tables know; a
    question about the refund policy ("what is your refund policy over 500 euros?") is
    not a request unless it also demands ("I want my 549 EUR back"), nor is money an
    employer or an insurer pays back."""
    if _REFUND.search(message) is None or paid_back_by_someone_else(message):
        return False
    return not asks_about_policy(message)
