"""The hand-over rules: every reason in English, French and Chinese, the controls that
must stay with the assistant, and what the tenant's policy changes (order, priorities,
thresholds, phrases, currencies)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from server.pipeline import handover_cues
from server.pipeline.escalation import (
    ConversationSignals,
    EscalationReason,
    decide_escalation,
    earlier_signals,
    fails_an_answer,
    next_signals,
    refund_claim,
)
from server.pipeline.memory import Memory
from server.pipeline.profile import OrderSummary
from server.tenants import EscalationPolicy, parse_tenant_config
from tests.unit.server.pipeline.helpers import analysis, turn

POLICY = EscalationPolicy(rates={"USD": 0.92, "GBP": 1.17, "CNY": 0.13})
CALM = ConversationSignals()


def policy(**changes: object) -> EscalationPolicy:
    """The test policy with ``changes``, validated as a tenant file would be."""
    return EscalationPolicy.model_validate({**POLICY.model_dump(), **changes})


BY_WORDS = {
    EscalationReason.SAFETY: {
        "en": "My new kettle sparks at the base and there was a burning smell.",
        "fr": "Le grille-pain a pris feu ce matin, il y avait de la fumée partout.",
        "zh": "充电器刚才冒烟了，还有一股烧焦味，我孩子的手也被烫伤了。",
    },
    EscalationReason.LEGAL: {
        "en": "If this isn't fixed by Monday my solicitor will be in touch.",
        "fr": "Sans réponse de votre part, je saisirai le tribunal et mon avocat.",
        "zh": "再不处理我就去法院起诉你们。",
    },
    EscalationReason.CHARGEBACK: {
        "en": "I'm going to ask my bank to reverse the card payment.",
        "fr": "Je vais contester le prélèvement auprès de ma banque.",
        "zh": "我已经联系信用卡中心申请拒付这笔交易。",
    },
    EscalationReason.PRIVACY: {
        "en": "Please delete all the personal data you hold about me.",
        "fr": "Je demande la suppression de toutes mes données personnelles.",
        "zh": "我的账号被盗了，有人登录了我的账户改了地址。",
    },
    EscalationReason.EXPLICIT_REQUEST: {
        "en": "Can I speak to a real person please?",
        "fr": "Je veux parler à un conseiller, pas à un robot.",
        "zh": "请帮我转人工客服。",
    },
    EscalationReason.REFUND_LIMIT: {
        "en": "I want the full €2,349 back for the TV.",
        "fr": "Je veux être remboursé de 2.349,00 € pour le téléviseur.",
        "zh": "请给我退款2349元，还有运费。",
    },
}


@pytest.mark.parametrize(
    ("reason", "language"),
    [(reason, language) for reason, texts in BY_WORDS.items() for language in texts],
)
def test_each_reason_read_from_words_fires_in_each_language(
    reason: EscalationReason, language: str
) -> None:
    message = BY_WORDS[reason][language]
    decision = decide_escalation(POLICY, message, analysis(message, language=language), CALM)
    assert decision.escalate and reason in decision.fired, (message, decision)


@pytest.mark.parametrize(
    "message",
    [
        "How long do I have to return a kettle?",
        "Is the kettle safe for children to use?",
        "Does the warranty cover a fire caused by a faulty plug?",
        "I'm a lawyer setting up an office kitchen; can I get an invoice with our VAT ID?",
        "How do you handle my personal data?",
        "Can I cancel my payment plan early?",
        "The agent I spoke to yesterday was lovely, thanks!",
        "My daughter burned the toast, ha. How do I clean the crumb tray?",
        "Please refund the 39.99 € for the missing cable.",
        "I paid €2,349 for the TV, when does it arrive?",
        "Quelle est votre politique de remboursement pour les articles de plus de 500 euros ?",
        "Je suis avocate, pouvez-vous m'envoyer une facture au nom du cabinet ?",
        "我想问一下退货政策是怎样的？",
        "请问你们怎么保护我的个人信息？",
        "Pouvez-vous me rappeler le numéro de dossier de ma réparation ?",
        # quoted names are products, films and game items, not events
        'Is the "Firestarter" chili sauce back in stock?',
        "游戏里「律师」这个角色怎么解锁？",
        "你们那款「辣到报警」的辣酱还卖吗？",
        # curiosity and harm put as a condition
        "Just curious: if a customer disputed a payment, would the account be closed?",
        "If my heater ever overheated, would the warranty cover it?",
        # a life event that no product caused
        "My mum is in hospital so I can't collect the parcel; can my neighbour pick it up?",
        # questions about data handling in general
        "Do you share my email address with other companies?",
        "你们会把我的手机号提供给合作商家吗？",
        "If a buyer files a chargeback on a ticket I resold, who covers the loss?",
        "Can I log in from a new phone without losing my points?",
        # harm named only to deny it
        "Pas de fumée ni d'odeur, juste plus de connexion. Vous pouvez envoyer quelqu'un ?",
        "弹簧有点凸出来了，也没人受伤，能安排人上门看看吗？",
        "Avant d'acheter : en cas de vice caché, faut-il passer par un avocat ou un médiateur ?",
        # a threat disowned
        "Je ne veux pas porter plainte, je voudrais juste comprendre ce délai.",
        "I don't want to file a chargeback, I just want the parcel.",
        "我不是要投诉到12315，就想问问什么时候发货",
        # a piano tuner (调律师傅) is no lawyer; a place by the court is no lawsuit
        "调律师傅下周几能上门？",
        "电动车可以停在法院门口吗？",
        "La trottinette s'est coupée en pleine côte, la batterie était vide.",
        # harm asked about as a risk, chargebacks asked about as a policy, a lid that leaks air
        "Is there any risk of an electric shock if I charge the bike outside?",
        "下雨天骑这款车会不会触电？",
        "用花呗付的订单，你们接受拒付吗？",
        "Do you accept chargebacks on gift card purchases?",
        "发酵罐的盖子好像漏气了，这正常吗？",
        # money back that an employer or an insurer pays
        "Please send a VAT invoice for the £1,450 course, my employer is reimbursing me.",
        "Pouvez-vous m'envoyer la facture des 890 € ? Ma mutuelle me rembourse une partie.",
        "请开一张2400元的发票，公司可以报销。",
        # a chargeback asked about "just to know"; an invoice sent with an ID number
        "如果我付款以后去银行申请拒付，你们会怎么处理？只是了解一下。",
        "请把发票发到我邮箱，身份证号码在订单备注里。",
        "If the tour is cancelled, do I get it back from you, or through my bank?",
        "Could you send me an invoice for the $2,340 package? My employer reimburses part of it.",
    ],
)
def test_answerable_messages_stay_with_the_assistant(message: str) -> None:
    decision = decide_escalation(POLICY, message, analysis(message), CALM)
    assert not decision.escalate, decision


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        (
            EscalationReason.SAFETY,
            "The ladder gave way and my husband is in A&E with a broken wrist.",
        ),
        (EscalationReason.SAFETY, "The heater burned my son's arm. Is it safe to keep using it?"),
        (EscalationReason.CHARGEBACK, "I rang Visa this morning and they are clawing it back."),
        (EscalationReason.CHARGEBACK, "J'ai fait opposition au paiement, votre débit était faux."),
        (EscalationReason.CHARGEBACK, "我已经打给建行，让他们把这笔钱拦截下来追回。"),
        (EscalationReason.PRIVACY, "You sold my phone number to a loan company, didn't you?"),
        (EscalationReason.PRIVACY, "Qqn a utilisé mon compte et mon mot de passe a été changé."),
        (EscalationReason.PRIVACY, "是不是你们把我的电话卖了？天天有人打来推销。"),
        (EscalationReason.EXPLICIT_REQUEST, "agent pls"),
        (EscalationReason.EXPLICIT_REQUEST, "could someone call me tomorrow morning?"),
        (EscalationReason.EXPLICIT_REQUEST, "Pouvez-vous me faire rappeler par un technicien ?"),
        (EscalationReason.EXPLICIT_REQUEST, "有没有专员可以加个微信对接一下？"),
        (EscalationReason.CHARGEBACK, "I phoned HSBC and they are reversing it as we speak."),
        (EscalationReason.LEGAL, "La fédération des consommateurs suit mon dossier."),
        (EscalationReason.SAFETY, "Mon fils saigne du nez depuis qu'il a pris ce sirop."),
        (EscalationReason.EXPLICIT_REQUEST, "Je voudrais avoir le gérant au téléphone."),
        (EscalationReason.EXPLICIT_REQUEST, "Is there a human I can chat to? Not the bot."),
        (EscalationReason.EXPLICIT_REQUEST, "I'd rather not go through the chatbot for this."),
        (EscalationReason.EXPLICIT_REQUEST, "Est-ce que je peux jaser avec un vrai agent?"),
        (EscalationReason.EXPLICIT_REQUEST, "麻烦让售后专员给我回个电话"),
        (EscalationReason.EXPLICIT_REQUEST, "你们能不能直接打个电话给我"),
        (EscalationReason.LEGAL, "My sister-in-law, a solicitor, is drafting a letter to you."),
        (EscalationReason.LEGAL, "Je saisis ce jour la médiation de l'assurance."),
        (EscalationReason.PRIVACY, "Someone logged in from a device I don't recognise."),
        (EscalationReason.PRIVACY, "Dites-moi ce que vous avez enregistré sur mon fils."),
        (EscalationReason.PRIVACY, "常用联系人里多了两个陌生人"),
        (EscalationReason.CHARGEBACK, "I've told Amex I don't recognise the renewal."),
        (EscalationReason.LEGAL, "I will not hesitate to take legal action."),
        (EscalationReason.LEGAL, "I've started a money claim against your boutique."),
        (EscalationReason.SAFETY, "开着你们的车，刹车突然变软踩不住，差点追尾"),
        (EscalationReason.LEGAL, "Je n'hésiterai pas à saisir le tribunal."),
        (EscalationReason.LEGAL, "J'ai déposé une réclamation auprès de la CNIL ce matin."),
        (EscalationReason.LEGAL, "my uncle is a lawer and he is writing you a formal letter"),
        (EscalationReason.CHARGEBACK, "J'ai ouvert une contestation auprès de ma banque."),
        (EscalationReason.SAFETY, "Je me suis coupé la main sur le bord de la tôle."),
        (
            EscalationReason.EXPLICIT_REQUEST,
            "Please pass this matter to a member of your staff; I'd prefer a person.",
        ),
        (EscalationReason.SAFETY, "A ceiling panel came down and hit a man on the shoulder."),
        (EscalationReason.SAFETY, "厨房的燃气灶好像漏气了，我先把窗户都打开了。"),
        (EscalationReason.SAFETY, "It gave me an electric shock, is there a risk of another?"),
        (EscalationReason.SAFETY, "Ma fille est tombée du vélo, elle a une entorse au poignet."),
        (
            EscalationReason.LEGAL,
            "you charged me twice so I've made a complaint to the consumer people about it",
        ),
        (EscalationReason.LEGAL, "Vous avez envoyé mes résultats à un inconnu, j'informe la CNIL."),
        (
            EscalationReason.PRIVACY,
            "Once the refund clears, please delete my card and my address from your systems.",
        ),
        (
            EscalationReason.EXPLICIT_REQUEST,
            "Je préférerais parler à un conseiller en chair et en os, s'il vous plaît.",
        ),
        (EscalationReason.EXPLICIT_REQUEST, "I'd like to chat with a flesh-and-blood person."),
        (
            EscalationReason.CHARGEBACK,
            "I rang Starling and they're getting the deposit back for me through the card people.",
        ),
        (
            EscalationReason.CHARGEBACK,
            "J'ai demandé à ma banque de refuser votre recouvrement pour cet abonnement.",
        ),
        (
            EscalationReason.LEGAL,
            "Sans remboursement, je dépose une requête à la justice de paix de mon canton.",
        ),
        (EscalationReason.PRIVACY, "quelqu'un est dans mon compte, la connexion venait de Lima"),
        (EscalationReason.PRIVACY, "你们把我的身份证照片发到了一个客户群里，请马上撤回。"),
        (
            EscalationReason.REFUND_LIMIT,
            "Please refund the fee of two hundred and forty-nine US dollars.",
        ),
    ],
)
def test_events_and_demands_said_in_other_words(reason: EscalationReason, message: str) -> None:
    decision = decide_escalation(POLICY, message, analysis(message), CALM)
    assert reason in decision.fired, (message, decision)


def test_the_tenant_order_names_the_reason_and_drops_unlisted_ones() -> None:
    message = "My lawyer says I should get all 2,349 EUR back after the kettle burned my hand."
    assert decide_escalation(POLICY, message, analysis(message), CALM).fired == (
        EscalationReason.SAFETY,
        EscalationReason.LEGAL,
        EscalationReason.REFUND_LIMIT,
    )
    legal_first = policy(order=("legal", "refund_limit", "safety"))
    decision = decide_escalation(legal_first, message, analysis(message), CALM)
    assert decision.reason is EscalationReason.LEGAL and decision.priority == "urgent"
    only_refunds = policy(order=("refund_limit",))
    decision = decide_escalation(only_refunds, message, analysis(message), CALM)
    assert decision.fired == (EscalationReason.REFUND_LIMIT,) and decision.priority == "normal"


def test_priorities_default_per_reason_and_the_tenant_overrides_them() -> None:
    message = "Please put me through to a manager."
    assert decide_escalation(POLICY, message, analysis(message), CALM).priority == "normal"
    urgent_people = policy(priorities={"explicit_request": "urgent"})
    assert decide_escalation(urgent_people, message, analysis(message), CALM).priority == "urgent"
    fire = "The blender caught fire!"
    assert decide_escalation(POLICY, fire, analysis(fire), CALM).priority == "urgent"


def test_a_tenant_adds_its_own_phrases_per_language() -> None:
    message = "Ich will den Vorstand sprechen"
    assert not decide_escalation(POLICY, message, analysis(message), CALM).escalate
    board = policy(keywords={"explicit_request": {"de": ("den Vorstand",)}})
    decision = decide_escalation(board, message, analysis(message), CALM)
    assert decision.reason is EscalationReason.EXPLICIT_REQUEST


@pytest.mark.parametrize(
    ("message", "locale", "expected"),
    [
        ("I want the full €2,349 back", "en", "2349"),
        ("Remboursez-moi 2.349,00 € immédiatement", "fr", "2349.00"),
        ("refund EUR 2349 please", "en", "2349"),
        ("Je veux un remboursement de 2 349 €", "fr", "2349"),
        ("Refund $1,234.56 to my card", "en", "1135.7952"),
        ("I want my £300 back", "en", "351.00"),
        ("退款 1 200 元", "zh", "156.00"),
    ],
)
def test_refund_amounts_are_read_in_any_format_and_converted(
    message: str, locale: str, expected: str
) -> None:
    claimed = refund_claim(POLICY, analysis(message, language=locale), message)
    assert claimed is not None and float(claimed) == pytest.approx(float(expected))


def test_an_amount_in_a_currency_without_a_rate_is_not_compared() -> None:
    message = "Refund my 90,000 JPY now"
    assert refund_claim(POLICY, analysis(message), message) is None
    assert not decide_escalation(POLICY, message, analysis(message), CALM).escalate


def test_the_full_amount_is_the_order_the_message_names_or_the_latest() -> None:
    orders = [
        OrderSummary("HK-2", 0.0, 59.0, "delivered", [{"name": "Descaler"}]),
        OrderSummary("HK-1", 0.0, 2349.0, "delivered", [{"name": "Barista Pro"}]),
    ]
    named = "I want the full amount back for the Barista Pro."
    assert refund_claim(POLICY, analysis(named), named, orders) == 2349
    assert decide_escalation(POLICY, named, analysis(named), CALM, orders).escalate
    latest = "Just give me a full refund."
    assert refund_claim(POLICY, analysis(latest), latest, orders) == 59
    chinese = "我要全额退款，订单 HK-1。"
    assert refund_claim(POLICY, analysis(chinese, language="zh"), chinese, orders) == 2349


def test_a_refund_the_reason_head_reads_is_held_to_the_limit_like_one_in_words() -> None:
    """ "The deposit should be back by now, it's $1,480" names no refund word the tables
    know; the head's ``money_back`` makes it a request, and the amount still decides."""
    above = "The charter was called off, the $1,480 deposit should be with me by now."
    below = "The charter was called off, the $80 deposit should be with me by now."
    meant = ("money_back",)
    assert not decide_escalation(POLICY, above, analysis(above), CALM).escalate
    decision = decide_escalation(POLICY, above, analysis(above, meant_reasons=meant), CALM)
    assert decision.escalate and decision.reason is EscalationReason.REFUND_LIMIT
    assert not decide_escalation(POLICY, below, analysis(below, meant_reasons=meant), CALM).escalate
    policy_question = "What is your refund policy for deposits over $1,000?"
    assert not decide_escalation(
        POLICY, policy_question, analysis(policy_question, meant_reasons=meant), CALM
    ).escalate


def test_repeated_failure_needs_two_verdicts_after_an_answer() -> None:
    fine = analysis("it doesn't work")
    first = next_signals(CALM, fine, "My router doesn't work.", seq=1, grounded=True)
    assert first.failed_answers == 0  # the problem itself, not a verdict on our help
    second = next_signals(first, fine, "That didn't help, still no internet.", 2, True)
    assert not decide_escalation(POLICY, "x", fine, second).escalate
    third = next_signals(second, fine, "Restarting did not work either.", 3, True)
    decision = decide_escalation(POLICY, "x", fine, third)
    assert decision.reason is EscalationReason.REPEATED_FAILURE
    french = next_signals(
        next_signals(CALM, fine, "Ça n'a rien changé.", 2, True), fine, "Toujours pas.", 3, True
    )
    chinese = next_signals(next_signals(CALM, fine, "还是不行。", 2, True), fine, "没用。", 3, True)
    assert french.failed_answers == chinese.failed_answers == 2


def test_a_failed_fix_the_reason_head_reads_counts_like_the_phrases() -> None:
    # words no phrase lists: the head's did_not_help reading makes them verdicts
    read = analysis("BIOS updated too, same keys", meant_reasons=("did_not_help",))
    assert read.says_it_did_not_help
    first = next_signals(CALM, read, "Keys dead after the repair.", seq=1, grounded=True)
    assert first.failed_answers == 0  # a first message is the problem, even read as failed
    second = next_signals(first, read, "Reinstalled drivers, nada.", 2, True)
    third = next_signals(second, read, "BIOS updated too, same keys.", 3, True)
    assert third.failed_answers == 2
    assert decide_escalation(POLICY, "x", read, third).reason is (EscalationReason.REPEATED_FAILURE)
    assert fails_an_answer("Reinstalled drivers, nada.", 2, read_as_failed=True)
    assert not fails_an_answer("Reinstalled drivers, nada.", 2)


@pytest.mark.parametrize(
    "resolved",
    [
        "Oh wait, regenerated it from the desktop site and it works",
        "Oh wait, holding my card on the reader again worked. All good",
        "Ah si, il fallait redémarrer l'appli. Merci !",
        "可以了，谢谢",
    ],
)
def test_a_fix_that_worked_is_no_failed_fix_whatever_the_head_reads(resolved: str) -> None:
    assert not fails_an_answer(resolved, 3, read_as_failed=True)
    # a thank-you that still reports the fault is one
    assert fails_an_answer("Thanks, but it's still beeping.", 3, read_as_failed=True)


def test_a_positive_message_is_not_read_as_a_failed_fix() -> None:
    glad = analysis("Restarted it. Great!", sentiment="positive", meant_reasons=("did_not_help",))
    assert not glad.says_it_did_not_help


def test_earlier_turns_count_by_their_stored_verdict_or_their_phrases() -> None:
    read_then = replace(turn(2, "Reinstalled drivers, nada.", "Try the BIOS."), help_failed=True)
    said = turn(3, "That didn't help either.", "Sorry.")
    unsaid = turn(4, "Which BIOS version?", "5.2.")
    signals = earlier_signals(Memory([read_then, said, unsaid], ""), 0, 0, handed_over=False)
    assert signals.failed_answers == 2


def test_frustration_is_one_frustrated_turn_or_a_negative_streak() -> None:
    furious = analysis("THIS IS A JOKE!!", sentiment="negative", score=-0.9, frustrated=True)
    signals = next_signals(CALM, furious, "THIS IS A JOKE!!", 1, True)
    decision = decide_escalation(POLICY, "THIS IS A JOKE!!", furious, signals)
    assert decision.reason is EscalationReason.FRUSTRATION and decision.priority == "high"
    streak_only = policy(frustrated_turns=0)
    assert not decide_escalation(streak_only, "x", furious, signals).escalate
    annoyed = analysis("meh", sentiment="negative", score=-0.7)
    twice = next_signals(next_signals(CALM, annoyed, "meh", 1, True), annoyed, "meh", 2, True)
    assert decide_escalation(streak_only, "meh", annoyed, twice).reason is (
        EscalationReason.FRUSTRATION
    )
    assert next_signals(twice, analysis("ok"), "ok", 3, True).negative == 0


@pytest.mark.parametrize(
    "second",
    [
        "Still stuck outside with the van. Really disappointing.",
        "重新装了还是不行，真的挺失望的。",
        "Toujours rien après la mise à jour, franchement déçue.",
    ],
)
def test_a_failed_fix_told_with_feeling_extends_the_negative_streak(second: str) -> None:
    first_turn = "The code you sent me doesn't open the gate, not impressed."
    unhappy = analysis(first_turn, sentiment="negative", score=-0.9)
    first = next_signals(CALM, unhappy, first_turn, 1, True)
    also_unhappy = analysis(second, sentiment="negative", score=-0.9)
    signals = next_signals(first, also_unhappy, second, 2, True)
    assert signals.failed_answers == 1 and signals.negative == 2
    assert decide_escalation(POLICY, second, also_unhappy, signals).reason is (
        EscalationReason.FRUSTRATION
    )
    calm_verdict = "Restarted it as well, still no signal."
    told_calmly = next_signals(first, also_unhappy, calm_verdict, 2, True)
    assert told_calmly.negative == 1


def test_a_weakly_negative_label_is_not_counted_as_unhappy() -> None:
    doubtful = analysis("which descaler fits?", sentiment="negative", score=-0.3)
    assert not doubtful.unhappy
    assert next_signals(CALM, doubtful, "which descaler fits?", 1, True).negative == 0


def test_documented_options_ungrounded_turns_and_sensitive_intents() -> None:
    fine = analysis("ok")
    twice = next_signals(next_signals(CALM, fine, "fax?", 1, False), fine, "tv?", 2, False)
    assert not decide_escalation(POLICY, "tv?", fine, twice).escalate  # off by default
    strict = policy(ungrounded_turns=2, sensitive_intents=("complaint",))
    assert decide_escalation(strict, "tv?", fine, twice).reason is (
        EscalationReason.REPEATED_FAILURE
    )
    complaint = analysis("formal complaint", intent="complaint")
    assert decide_escalation(strict, "formal complaint", complaint, CALM).reason is (
        EscalationReason.SENSITIVE_INTENT
    )


def test_a_sure_person_intent_is_a_request_and_an_unsure_one_is_not() -> None:
    message = "The mobile data on my loan phone stopped working, but calls are fine."
    for confidence in (0.2, 0.45):  # 0.45: a hearing aid "with no sound" (没声音)
        unsure = analysis(message, intent="contact_human_agent", intent_confidence=confidence)
        assert not decide_escalation(POLICY, message, unsure, CALM).escalate
    sure = analysis("Get me someone", intent="contact_human_agent", intent_confidence=0.9)
    decision = decide_escalation(POLICY, "Get me someone", sure, CALM)
    assert decision.reason is EscalationReason.EXPLICIT_REQUEST and not decision.model_answers


def test_files_written_for_the_first_policy_keep_their_meaning() -> None:
    config = parse_tenant_config(
        "[escalation]\non_human_request = false\non_frustration = false\n"
        "refund_limit_eur = 100.0\nsensitive_intents = ['complaint']\n",
        "old.toml",
    )
    policy = config.escalation
    assert "explicit_request" not in policy.order and policy.frustrated_turns == 0
    assert policy.refund_limit == 100.0 and policy.currency == "EUR"
    message = "Can I speak to a human?"
    assert not decide_escalation(policy, message, analysis(message), CALM).escalate


@pytest.mark.parametrize(
    ("message", "did_not_help"),
    [
        ("Reinstalled the app too, no difference.", True),
        ("Réinitialisé aussi, pareil : écran noir.", True),
        ("J'ai vidé le cache comme indiqué, ça plante toujours.", True),
        ("Restarted it as you suggested and it works now, thanks!", False),
        ("It made a real difference, thank you.", False),
        ("Piles changées aussi, la sirène reste muette.", True),
        ("Descaling done, E07 came back after ten minutes.", True),
        ("updated the app, dropped again at the same point", True),
        ("Re-paired it with the app as well. Same code.", True),
        ("J'ai aussi fait la réinitialisation, rien ne change.", True),
        ("The engineer came back yesterday and it works now, thanks.", False),
        ("Redémarré la box aussi, aucun changement.", True),
        ("重新插了一遍探头，还是-18", True),
        ("asked for a new code, that one says expired too", True),
        ("Tried another browser as well. Same freeze at 3:10.", True),
        ("用手机热点也试了，一样卡着不动。", True),
        ("换了浏览器，还是加载不出来。", True),
        ("Your new code says it is valid too, thanks!", False),
    ],
)
def test_a_verdict_on_our_help_in_other_words(message: str, did_not_help: bool) -> None:
    assert handover_cues.says_it_did_not_help(message) is did_not_help


def test_asking_to_have_money_back_in_other_words() -> None:
    assert handover_cues.asks_for_money_back("renewed without asking, $219. id like that back pls")
    assert handover_cues.asks_for_money_back("押金800元麻烦原路退回")
    assert handover_cues.asks_for_money_back("you said the deposit comes back in full, $1,480")
    assert handover_cues.asks_for_money_back("2300元的定金什么时候退？")
    assert handover_cues.asks_for_money_back("no replacement, need the $1,129.99 back pls")
    assert handover_cues.asks_for_money_back("I'd like everything I paid returned to my card.")
    assert handover_cues.asks_for_money_back("Je veux être remboursé de tout ce que j'ai payé.")
    assert not handover_cues.asks_for_money_back("I'd like that blue one, please.")
