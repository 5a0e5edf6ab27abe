"""The words the opt-out reader knows: keywords, fillers, guards and request patterns.

Data only, read by :mod:`sms_service.domain.opt_out` (whose docstring gives the rules).
Everything is folded: lower case, no accents, no apostrophes ("don't" is "dont"). Adding
a wording here is a policy change: add its sentence to the tables in
``tests/unit/test_opt_out.py`` too, in the right direction.
"""

from __future__ import annotations

# Opt-out keywords, folded (lower case, no accents). "opt out" is joined to "optout" and
# "dar de baja" to "baja" before matching.
ENGLISH_KEYWORDS = frozenset(
    {"stop", "stopall", "unsubscribe", "unsub", "cancel", "end", "quit", "revoke", "optout"}
)
SPANISH_KEYWORDS = frozenset({"alto", "parar", "cancelar", "baja"})
KEYWORDS = ENGLISH_KEYWORDS | SPANISH_KEYWORDS

# Words that may surround a keyword without changing what it means: politeness, emphasis,
# "all"/"now"/"it", and the "I said" of someone repeating themselves.
FILLERS = frozenset(
    {
        # English politeness and emphasis
        "please", "pls", "plz", "plzz", "plez", "pleas", "plse", "kindly", "thanks", "thank",
        "thankyou", "you", "thx", "ty", "tysm", "now", "all", "it", "right", "away",
        "immediately", "asap", "just", "ok", "okay", "already", "again", "seriously",
        "really", "for", "good", "forever", "everything", "i", "said", "told", "yall",
        "fucking", "fuckin", "fking", "freaking", "frickin", "friggin", "effing", "damn",
        "damnit", "dammit", "goddamn", "goddammit", "bloody", "omg",
        # Spanish
        "por", "favor", "porfa", "porfavor", "porfis", "xfa", "xfavor", "gracias", "ya",
        "ahora", "todo", "todos", "todas", "inmediatamente",
    }
)  # fmt: skip

# Trimmed from both ends of a clause before the plain-language patterns are tried.
POLITENESS = frozenset(
    {"please", "pls", "plz", "plzz", "plez", "kindly", "thanks", "thank", "thankyou", "thx",
     "ty", "tysm", "ok", "okay", "now", "asap", "immediately", "already", "seriously", "por",
     "favor", "porfa", "porfavor", "xfa", "gracias", "ya", "ahora"}
)  # fmt: skip

# Dropped before the plain-language patterns are tried: "stop fucking texting me".
INTENSIFIERS = frozenset(
    {"fucking", "fuckin", "fking", "freaking", "frickin", "friggin", "effing", "damn",
     "bloody", "goddamn", "just", "kindly", "pls", "plz", "please"}
)  # fmt: skip

# Words before a request (up to four, in its clause) that turn it around ("please don't
# stop texting me": not a request), or make it a question or a condition ("why did you
# stop texting me", "if you don't stop texting me…": held for review, not acted on).
GUARD_WINDOW = 4
NEGATORS = {
    "en": frozenset({"dont", "not", "never", "didnt", "cant", "cannot", "wont", "doesnt",
                     "shouldnt", "wouldnt", "couldnt", "isnt", "aint", "wasnt", "werent"}),
    "es": frozenset({"no", "nunca", "jamas", "ni"}),
}  # fmt: skip
QUESTIONS = {"en": frozenset({"why", "whyd", "did"}), "es": frozenset({"porque"})}
CONDITIONALS = {"en": frozenset({"if", "unless"}), "es": frozenset({"si"})}

_SUBJECT = r"(?:me|us|this (?:phone )?number|my (?:phone |cell )?(?:number|phone|cell))"
_NOUN = r"(?:texts?|txts?|messages?|msgs?|sms|alerts?|notifications?|spam|updates)"
_SEND_VERBS = "sending|texting|txting|texing|messaging|msging|contacting|spamming|calling|emailing"
_SEND = f"(?:{_SEND_VERBS})"

# What may follow a request without making it about something else ("don't text me
# again", "remove me from your list"): the request must end the clause, or be followed
# only by these words.
_TAIL = (
    rf"(?: (?:anymore|any more|again|ever|at all|here|at this number|no more|anything|any"
    rf"|more|these|this|those|stuff|{_NOUN}))*$"
)
_FROM_LIST = (
    r"(?: (?:from|off)(?: (?:of|your|ur|the|this|these|that|all|my|ya|mailing|texting"
    r"|contact|sms|text|alert|alerts))*(?: (?:list|lists|texts?|messages?|alerts?|program"
    r"|contacts?|database|system|it|this|them|these|everything|here))?)?$"
)

# Plain-language requests: opt out at once. Matched per clause, with guards.
CLEAR_PATTERNS: tuple[tuple[str, str, str], ...] = (
    ("en", "stop texting me", rf"\b(?:stop|quit) (?:{_SEND_VERBS}|bothering|bugging|pestering"
                              rf"|harassing|text|message|contact) {_SUBJECT}\b"),
    ("en", "stop texting", rf"\b(?:stop|quit) {_SEND}(?: (?:me|us|these|those|this|them|stuff"
                           rf"|all|the|any|more|anything|{_NOUN}))*$"),
    ("en", "stop the texts", rf"\b(?:stop|end|cancel|quit) (?:(?:all|the|these|those|this|your"
                             rf"|ur|ya|my|any|of|more|future|receiving|getting) )*{_NOUN}\b"),
    ("en", "don't text me", rf"\b(?:dont|do not|never|no longer) (?:ever )?(?:text|txt|message"
                            rf"|msg|contact|sms|call|email|bother|spam|send|write) "
                            rf"{_SUBJECT}{_TAIL}"),
    ("en", "don't contact", r"\b(?:dont|do not) (?:contact|text|message|txt)$"),
    ("en", "no more texts", rf"\bno more {_NOUN}\b"),
    ("en", "remove me", rf"\b(?:remove|delete|erase|unlist|take|get|drop) (?:me|us){_FROM_LIST}"),
    ("en", "take me off", r"\b(?:take|get) (?:me|us) off$"),
    ("en", "remove my number", r"\b(?:remove|delete|erase|scrub|purge|unlist|lose|forget|drop"
                               r"|take) (?:my|this) (?:phone |cell |mobile )?(?:number|no|num"
                               r"|phone|cell|contact|info|information|details|data)\b"),
    ("en", "remove from the list", r"\bremove (?:from|off) (?:the|this|your|ur) list\b"),
    ("en", "wrong number", r"^(?:(?:sorry|you have|youve got|you got|youre texting|this is|its"
                           r"|thats|you|have|got|the|a) )*wrong (?:number|num|person|phone)"
                           r"(?: (?:sorry|thanks|thank|you|please|lol|buddy|pal|dude|mate))*$"),
    ("en", "opt me out", rf"\bopt {_SUBJECT} out\b"),
    ("en", "unsubscribe me", rf"\bunsubscribe (?:{_SUBJECT}|from (?:this|these|your|the|all)"
                             rf")\b"),
    ("en", "cancel me", r"\b(?:cancel|unsubscribe) me$"),
    ("en", "I want out", r"^(?:i |we )?(?:want|wanna|would like|d like|need|wish) (?:to )?"
                         r"(?:unsubscribe|opt out|optout|stop|quit|cancel|leave|out|be removed"
                         r"|get off|end this|stop this)$"),
    ("en", "I want to be removed", r"\b(?:i|we) (?:want|wanna|would like|d like|need) (?:to )?"
                                   r"(?:be )?(?:removed|unsubscribed|taken off|opted out)\b"),
    ("en", "I don't want texts", rf"\b(?:dont|do not|no longer) (?:want|wish|need|like) (?:to "
                                 rf"(?:receive|get) )?(?:(?:any|these|those|this|your|ur|the"
                                 rf"|more|anymore|further|of) )*{_NOUN}\b"),
    ("en", "don't want to be texted", r"\b(?:dont|do not|no longer) (?:want|wish) to be "
                                      r"(?:texted|contacted|messaged|on (?:this|your|the) "
                                      r"list)\b"),
    ("en", "stop receiving texts", rf"\b(?:stop|quit) (?:receiving|getting) (?:(?:these|your"
                                   rf"|the|any|all) )?{_NOUN}\b"),
    ("en", "cancel my subscription", r"\b(?:cancel|end|stop) (?:my |this |the )?(?:subscription"
                                     r"|membership|signup|sign up)\b"),
    ("es", "no me envíen", r"\bno me (?:envien|envies|envie|manden|mandes|mande|escriban"
                           r"|escribas|escriba|contacten|contactes|contacte|molesten|molestes"
                           r"|texteen|textees)\b"),
    ("es", "no quiero mensajes", r"\bno (?:quiero|deseo) (?:recibir |que me (?:envien|manden"
                                 r"|escriban) )?(?:(?:mas|ningun|ninguno|estos|sus|tus|los"
                                 r"|otro|otros) )*(?:mensajes?|textos?|sms|alertas?)\b"),
    ("es", "dejen de enviarme", r"\b(?:dejen|deja|dejad|deje) de (?:enviarme|mandarme"
                                r"|escribirme|contactarme|textearme|molestarme|enviar mensajes"
                                r"|mandar mensajes|enviar textos)\b"),
    ("es", "bórrame", r"\b(?:borrame|borrenme|borreme|eliminame|eliminenme|elimineme|sacame"
                      r"|saquenme|saqueme|quitame|quitenme|quiteme|darme de baja|dame de baja"
                      r"|denme de baja|deme de baja|dar de baja|desuscribirme|desuscribanme"
                      r"|desuscribeme|darse de baja|desuscribir)\b"),
    ("es", "que me borren", r"\bque me (?:borren|eliminen|saquen|quiten|den de baja)\b"),
    ("es", "borren mi número", r"\b(?:borra|borren|borre|elimina|eliminen|elimine|quita|quiten"
                               r"|quite|saca|saquen) (?:mi|este) (?:numero|telefono|celular"
                               r"|cel|contacto)\b"),
    ("es", "número equivocado", r"\b(?:numero equivocado|equivocado de numero"
                                r"|equivocaron de numero|equivoco de numero)\b"),
    ("es", "cancelar suscripción", r"\bcancel\w* (?:mi |la |esta )?(?:suscripcion"
                                   r"|subscripcion)\b"),
    ("es", "no más mensajes", r"\bno mas (?:mensajes|textos|sms|alertas)\b"),
)  # fmt: skip

# Likely but uncertain: held for review. (language, why, pattern).
POSSIBLE_PATTERNS: tuple[tuple[str, str, str], ...] = (
    ("en", "leave me alone", r"\bleave (?:me|us) alone\b"),
    ("en", "remove me, from something", r"\b(?:(?:remove|delete|erase) (?:me|us)|(?:take|get"
                                        r"|drop) (?:me|us) (?:off|from))\b"),
    ("en", "don't text me, and more", r"\b(?:dont|do not|never) (?:ever )?(?:text|txt"
                                      r"|message|msg|contact|sms|send) (?:me|us)\b"),
    ("en", "wrong number, in a sentence", r"\bwrong (?:number|num|person|phone)\b"),
    ("en", "not interested", r"\b(?:not|no longer|not really) interested\b"),
    ("en", "go away", r"\b(?:go away|(?:fuck|f|piss|bugger|sod) off)\b"),
    ("en", "enough", r"^(?:enough|enough already|no more|spam|this is spam|remove|delete|erase"
                     r"|stahp|staph|stawp)$"),
    ("en", "don't want these", r"\b(?:dont|do not) want (?:these|this|them|it|any more"
                               r"|anymore)$"),
    ("en", "never signed up", r"\b(?:didnt|never|did not) (?:sign up|signed up|subscribe"
                              r"|subscribed|opt in|opted in|agree|agreed|ask|asked)\b"),
    ("en", "who has my number", r"\b(?:how did you get|who gave you|where did you get) my "
                                r"(?:number|phone|cell)\b"),
    ("es", "déjame en paz", r"\bdej(?:a|en|e|ad)(?:me|nos) en paz\b"),
    ("es", "no me interesa", r"\b(?:no me interesa|no estoy interesad[oa]|ya no me interesa)\b"),
    ("es", "basta", r"^(?:basta|ya basta|no mas|ya no quiero|pare|paren|para|parale|parenle"
                    r"|detente|detenganse)$"),
)  # fmt: skip

# Characters that look like the letters of a keyword ("5TOP", "ST0P", Cyrillic "ЅТОР").
LOOK_ALIKES = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "$": "s", "@": "a",
     "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
     "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ј": "j", "ԁ": "d", "ɡ": "g", "α": "a",
     "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
     "υ": "u", "χ": "x", "ł": "l"}
)  # fmt: skip
STOP_EMOJI = frozenset("\U0001f6d1\u26d4\U0001f6ab\u270b")  # 🛑 ⛔ 🚫 ✋
# Misspellings are looked for only near these, with the distance allowed; the shortest
# keywords are left out or allowed only swapped letters, where a near miss is too often
# another word (END/AND, ALTO/ALTA).
NEAR = {"stop": 1, "stopall": 1, "unsubscribe": 2, "cancel": 1, "cancelar": 1, "revoke": 1,
         "optout": 1, "parar": 1, "quit": 0, "alto": 0}  # fmt: skip
