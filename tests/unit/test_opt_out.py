"""Opt-out wording as tables, in both directions: what stops at once, what is held for
review, and what must never opt anyone out. A false opt-out is a harm too, so the table
of must-not sentences is kept at least as long as the must-opt-out one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sms_service.domain import opt_out
from sms_service.domain.keywords import (
    Catalogue,
    ConsentKind,
    Conversation,
    Intent,
    Status,
    decide,
)
from sms_service.domain.opt_out import Reading, clean, read
from sms_service.domain.replies import Program

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
PROGRAM = Program("Rights Alerts", "help@rights.example", "Up to 4 msgs/mo")
SUB = Status.SUBSCRIBED

# Keyword with politeness, emphasis, repetition, emoji, "all"/"now"/"it" around it.
KEYWORD_FORMS = [
    "STOP", "stop", "Stop.", "STOP!!!", "  stop  ", "Stop please", "Please stop", "STOP STOP",
    "STOP STOP STOP", "stop now", "Stop it", "stop it now", "*STOP*", "**stop**", "Stop 🛑",
    "🛑 STOP 🛑", "STOP 😡😡", "Please unsubscribe", "unsubscribe", "UNSUBSCRIBE PLEASE",
    "unsub", "STOP ALL", "stop all please", "STOPALL", "S\u200bTOP", "ST\u200dOP",
    "\ufeffSTOP", "STOP\x00", "ST\x07OP", "ＳＴＯＰ", "𝐒𝐓𝐎𝐏", "STOOOOP", "Stop!!! Now!!!",
    "cancel", "Cancel please", "CANCEL ALL", "end", "END IT", "End now", "quit", "Quit it",
    "I quit", "revoke", "opt out", "Opt-Out", "OPT OUT NOW", "optout", "I said STOP",
    "Stop, thank you", "stop thanks", "Stop. Seriously.", "just stop", "STOP ALREADY",
    "stop asap", "stop. right now.", "Stop immediately", "stop\nplease", "S\u00adTOP",
    "ALTO", "alto por favor", "Alto ya", "PARAR", "Cancelar", "cancelar todo", "BAJA",
    "Baja por favor", "dar de baja", "¡ALTO!",
]  # fmt: skip
# Plain-language requests, English and Spanish.
PLAIN_REQUESTS = [
    "remove me", "Remove me from this list", "Please remove my number",
    "please remove my number from your list", "stop texting me", "Stop texting me please",
    "STOP TEXTING ME!!!!", "stop fucking texting me", "Please stop sending me these messages",
    "stop messaging me", "stop contacting me", "Stop sending texts", "stop the texts",
    "Stop all messages", "Stop these texts", "no more texts please", "No more messages",
    "delete my number", "Delete my number please", "lose my number", "Lose my number!",
    "forget my number", "erase my number", "take me off your list", "Take me off the list",
    "get me off this list", "wrong number", "Wrong number, sorry", "you have the wrong number",
    "opt me out", "Please opt me out", "don't contact me", "Don't contact me again",
    "do not text me", "Don't text me anymore", "Don’t text me", "never text me again",
    "don't message me", "unsubscribe me", "Unsubscribe me from this", "I want to unsubscribe",
    "I want out", "i wanna opt out", "I would like to be removed", "I don't want these texts",
    "I don't want any more messages", "I no longer wish to receive messages",
    "cancel my subscription", "I want to stop receiving texts", "Stop bugging me",
    "stop harassing me", "Can you stop texting me?", "Will you please stop texting me",
    "Who is this? Stop texting me", "How did you get my number? Remove me",
    "I never signed up, remove me", "Stop texting me or I'll report you",
    "I don't care. Stop texting me.", "take my number off your list",
    "no me envíen más mensajes", "No me envien mas mensajes", "bórrame de la lista",
    "Borrame", "bórrenme por favor", "Sáquenme de la lista", "quítenme de su lista",
    "eliminen mi número", "Borren mi numero", "número equivocado", "Numero equivocado",
    "dejen de enviarme mensajes", "Deja de escribirme", "no quiero recibir más mensajes",
    "No quiero mas mensajes", "ya no quiero recibir mensajes", "quiero darme de baja",
    "Denme de baja", "cancelar mi suscripción", "no me escriban más", "no me contacten",
    "no más mensajes", "Quiero que me borren de la lista", "quit texting me",
    "Quit sending me these",
]  # fmt: skip
MUST_OPT_OUT = KEYWORD_FORMS + PLAIN_REQUESTS

# Likely but uncertain: held as possible opt-outs, never ignored.
MUST_HOLD = [
    "stpo", "sotp", "STPO", "Stopp", "stp", "stoop", "Unsubscibe", "unsubcribe", "cancle",
    "stpo please", "S T O P", "s t o p", "S.T.O.P", "S-T-O-P", "st op", "u n s u b s c r i b e",
    "5TOP", "ST0P", "$TOP", "ЅТОР", "SΤOP", "5T0P please", "leave me alone",
    "Leave me alone!!", "not interested", "Not interested, thanks", "I'm not interested",
    "no longer interested", "go away", "enough", "this is spam",
    "I never signed up for this", "How did you get my number?", "Déjame en paz",
    "no me interesa", "basta", "🛑", "If you don't stop texting me I'll report you",
    "How do I unsubscribe?", "can i opt out?", "No STOP", "I texted the wrong number",
    "Remove me as a speaker at the rally", "Don't text me the address, email it",
    "We've got to STOP this bill!", "When does the rally end?", "Stop the war",
    "Remove", "Delete", "Stahp", "PARE", "paren", "I don't want these", "I'm done, unsubscribe",
]  # fmt: skip

# Sentences that must never opt anyone out (some are held for review, which is allowed).
MUST_NOT_OPT_OUT = [
    "We've got to STOP this bill!", "When does the rally end?", "Can't stop won't stop",
    "don't stop fighting", "Don't stop", "Please don't stop texting me",
    "I don't want you to stop texting me", "Never stop!", "Why did you stop texting me?",
    "Stop the war", "Stop the pipeline now!", "STOP POLICE VIOLENCE",
    "Stop sending weapons to the regime", "Stop texting and driving", "Stop by our office at 5",
    "Bus stop at Main St", "What time does the march end?", "The end of the line",
    "Endless thanks to you all", "Cancel the debt!", "Don't cancel the march",
    "Cancel culture is out of hand", "I quit my job to volunteer", "Don't quit on us",
    "We will never quit", "Revoke the permit!", "Revoke their license", "unstoppable",
    "nonstop", "Stopping by later", "JOIN", "START", "YES", "HELP", "SIGN", "HK64", "hi",
    "Hello!", "Thanks!", "OK", "Ada Lovelace", "Count me in", "Keep me posted",
    "Keep texting me", "Please keep me on the list", "Add my friend's number",
    "Don't remove me", "Please don't delete my number", "Did you remove me?",
    "Why did you remove me from the list?", "Don't take me off the list",
    "Take me off the waitlist for the bus", "I love these texts", "More texts please",
    "Send me more updates", "Where is the rally?", "Who do I call?", "Call your senator",
    "How do I sign?", "Thank you for the update", "Great work everyone",
    "See you at the march", "Can I bring my kids?", "¡Sí se puede!", "No pares de luchar",
    "No cancelen la marcha", "no cancelar la marcha", "Gracias por la información",
    "¿Dónde es la marcha?", "Alto al fuego ya", "Hola", "Me encanta", "Quiero firmar",
    "End the filibuster", "End the war in Yemen", "Stop Line 3", "Stop and think",
    "Stop and frisk must end", "STOP HATE", "Stop the cuts", "It's time to end the death penalty",
    "This has to stop", "Put an end to it", "Don't text and drive", "Text me the address",
    "Can you text me the details?", "Remove the senator!", "Delete the tweet", "Forget it",
    "Take me to the rally", "stop by", "I hope you never stop texting me",
    "Don't ever stop sending these", "Never stop texting me", "Don't unsubscribe me",
    "Please don't opt me out", "I'm not the wrong number", "Nunca dejen de enviarme mensajes",
    "No dejen de enviarme mensajes", "No me borren por favor", "No quiero que me borren",
    "Sigan enviándome mensajes", "All of it", "Now what?", "Let's do it now", "please",
    "I'm in", "Yes please", "Sign me up", "UNIRSE", "AYUDA", "Info", "👍", "❤️", "",
    "   ", "?", "stopwatch", "Endgame", "cancellation", "Quitting is not an option",
    "What's the address?", "I signed yesterday", "My name is Ada Lovelace", "Is this legit?",
    "Who is this?", "lol", "Sounds good", "I'll be there", "Can't make it, sorry",
    "Maybe next time", "Is there parking?", "Do you have a website?", "Send the link",
    "Thanks for everything you do", "Donate how?", "How much is the bus?",
    "Remind me tomorrow", "What petition is this?", "I already signed", "Did it work?",
    "Got it", "Will do", "Love this", "Go team!", "Let's go!", "Text me when it starts",
    "Call me later", "Please text my sister too", "My number changed, new one soon",
    "I'm at the stop", "Stop signs on Elm need fixing", "Get me the flyer",
    "Remove the barricades", "Delete the old post", "Lose the sign, bring a banner",
    "Cancel my ride, I'll walk", "The meeting will end at 9", "Don't stop believing",
    "Do not stop the count", "Que no pare la lucha", "No paren", "Gracias, nos vemos",
    "¿A qué hora termina?", "Sí", "Claro que sí", "Estoy en camino", "Firmé ayer",
    "I can't stop smiling", "Unstoppable together", "Stop at nothing for justice? No: stay safe",
]  # fmt: skip

# Plainly not opt-outs: not even held for review.
NEVER_HELD = [
    "Can't stop won't stop", "don't stop fighting", "Please don't stop texting me",
    "I don't want you to stop texting me", "Don't cancel the march", "No pares de luchar",
    "no cancelar la marcha", "Don't quit on us", "We will never quit", "Don't remove me",
    "Please don't delete my number", "Don't take me off the list", "Never stop texting me",
    "Keep texting me", "I love these texts", "unstoppable", "nonstop", "Ada Lovelace", "hi",
    "Take me to the rally", "No dejen de enviarme mensajes", "Nunca dejen de enviarme mensajes",
    "No me borren por favor", "Don't unsubscribe me", "Please don't opt me out",
]  # fmt: skip


def test_the_must_not_table_is_as_long_as_the_must_table():
    assert len(MUST_OPT_OUT) >= 80
    assert len(MUST_NOT_OPT_OUT) >= len(MUST_OPT_OUT)


@pytest.mark.parametrize("text", MUST_OPT_OUT)
def test_opts_out_at_once_with_the_one_confirmation(text):
    assert read(text).reading is Reading.CLEAR, read(text)
    decision = decide(text, Conversation(SUB), Catalogue(), PROGRAM, received_at=NOW)
    assert decision.intent is Intent.OPT_OUT and decision.status is Status.OPTED_OUT
    assert decision.events == (ConsentKind.OPT_OUT,)
    assert decision.reply.startswith("Rights Alerts: ")
    assert "no more messages" in decision.reply or "no recibirá más mensajes" in decision.reply


@pytest.mark.parametrize("text", MUST_HOLD)
def test_uncertain_wording_is_held_for_review_never_ignored(text):
    assert read(text).reading is Reading.POSSIBLE, read(text)
    decision = decide(text, Conversation(SUB), Catalogue(), PROGRAM, received_at=NOW)
    assert decision.intent is Intent.POSSIBLE_OPT_OUT and decision.status is SUB
    assert decision.events == (ConsentKind.POSSIBLE_OPT_OUT,)
    assert decision.review_by is not None and decision.note.startswith("possible opt-out: ")
    assert decision.reply is not None and "Sorry" not in decision.reply
    assert ("Reply STOP to stop all texts" in decision.reply) or (
        "Responda ALTO para dejar de recibir todos los mensajes" in decision.reply
    )


@pytest.mark.parametrize("text", MUST_NOT_OPT_OUT)
@pytest.mark.parametrize("status", [Status.NONE, SUB])
def test_never_opts_anyone_out(text, status):
    assert read(text).reading is not Reading.CLEAR, read(text)
    decision = decide(text, Conversation(status), Catalogue(), PROGRAM, received_at=NOW)
    assert decision.intent is not Intent.OPT_OUT
    assert ConsentKind.OPT_OUT not in decision.events
    assert decision.status is not Status.OPTED_OUT


@pytest.mark.parametrize("text", NEVER_HELD)
def test_plainly_not_an_opt_out_is_not_even_held(text):
    assert read(text).reading is Reading.NONE, read(text)


def test_the_tables_do_not_contradict_each_other():
    assert not set(MUST_OPT_OUT) & set(MUST_NOT_OPT_OUT)
    assert not set(MUST_OPT_OUT) & set(MUST_HOLD)
    assert set(NEVER_HELD) <= set(MUST_NOT_OPT_OUT)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("S\u200bTOP", "STOP"),  # zero-width space
        ("\ufeffhi\u2060 there", "hi there"),  # BOM, word joiner
        ("a\x00b\x1bc", "abc"),  # NUL and ESC
        ("  many \t\n spaces  ", "many spaces"),
        ("ＳＴＯＰ", "STOP"),  # fullwidth, by NFKC
        ("ﬁne", "fine"),  # ligature, by NFKC
        ("\u202estop\u202c", "stop"),  # bidi override
    ],
)
def test_clean(raw, expected):
    assert clean(raw) == expected


def test_emoji_and_punctuation_around_words_are_ignored():
    assert opt_out.words(opt_out.fold("¡¡**Stop**!! 🛑🛑 ...")) == ["stop"]
    assert opt_out.fold("Don’t STOOOP") == "dont stop"


def test_reading_says_why_and_which_language():
    assert read("ALTO").language == "es" and read("ALTO").keyword == "ALTO"
    assert read("STOP").language is None and read("STOP").keyword == "STOP"
    assert read("Opt-out").keyword == "OPT OUT"
    assert read("bórrame").language == "es"
    assert read("remove me").language == "en"
    assert read("stpo").why == "misspelling of STOP"
    assert read("S T O P").why == "spaced-out letters"
    assert read("5TOP").why == "look-alike letters"


def test_a_kept_reading_is_the_reading_worked_out_afresh():
    """Short texts' readings are kept for the next text; each must be what reading the text
    from scratch gives, for every text of the tables; a long text is never kept."""
    tables = (*MUST_OPT_OUT, *MUST_HOLD, *MUST_NOT_OPT_OUT, *NEVER_HELD)
    for text in tables:
        assert opt_out.read(text) == opt_out._read(text), text
        assert opt_out.read(text) == opt_out._read(text), text  # the second, from the cache
    long = "please " * 30 + "stop"
    assert len(long) > opt_out.KEPT_LENGTH
    kept = opt_out._read_kept.cache_info().currsize
    assert opt_out.read(long) == opt_out._read(long)
    assert opt_out._read_kept.cache_info().currsize == kept
