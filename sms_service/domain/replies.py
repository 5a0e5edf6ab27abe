"""The wording of every keyword reply, built from the program's settings.

Carriers (CTIA) audit these texts: opt-in confirmations and HELP answers must name the
program, state the frequency, say "Msg & data rates may apply" and tell how to get help and
how to stop. The opt-out confirmation names the program, says nothing more will be sent and
carries no marketing. The exact text sent is stored with each consent event, so wording
changes never rewrite what a supporter was told.
"""

from __future__ import annotations

from dataclasses import dataclass

RATES = "Msg & data rates may apply."
HELP_STOP = "Reply HELP for help, STOP to cancel."


@dataclass(frozen=True)
class Program:
    """The program's identity as disclosed to supporters."""

    name: str
    help_contact: str
    frequency: str
    terms_url: str | None = None

    def __post_init__(self) -> None:
        for field in ("name", "help_contact", "frequency"):
            if not getattr(self, field).strip():
                raise ValueError(f"program {field} must not be empty")


def _frequency(program: Program) -> str:
    text = program.frequency.strip()
    return text if text.endswith(".") else text + "."


def _terms(program: Program) -> str:
    return f" Terms: {program.terms_url}" if program.terms_url else ""


def opt_in_confirmation(program: Program) -> str:
    """First message after JOIN/START: the full CTIA disclosure."""
    return (
        f"{program.name}: You're subscribed to recurring alerts. {_frequency(program)} "
        f"{RATES} {HELP_STOP}{_terms(program)}"
    )


def signed_and_subscribed(program: Program, title: str) -> str:
    """After SIGN: thanks, the recurring-message disclosure, and the name question."""
    return (
        f'{program.name}: Thanks for signing "{title}"! Reply with your full name to add it '
        f"to your signature. You'll get recurring alerts. {_frequency(program)} {RATES} "
        f"{HELP_STOP}{_terms(program)}"
    )


def already_signed(program: Program, title: str, ask_name: bool) -> str:
    """SIGN again for a petition this number already signed: nothing is counted twice."""
    ask = " Reply with your full name to add it to your signature." if ask_name else ""
    return f'{program.name}: You already signed "{title}" - thank you!{ask} {HELP_STOP}'


def signed_before_and_resubscribed(program: Program, title: str, ask_name: bool) -> str:
    """SIGN from an opted-out number that already signed: not counted again, opted back in
    with the full disclosure."""
    ask = " Reply with your full name to add it to your signature." if ask_name else ""
    return (
        f'{program.name}: You already signed "{title}" - thank you!{ask} You\'re subscribed '
        f"to recurring alerts again. {_frequency(program)} {RATES} {HELP_STOP}{_terms(program)}"
    )


def name_thanks(program: Program, name: str, title: str, count: int) -> str:
    """Answer to the name reply, with the petition's signature count."""
    first = name.split()[0]
    noun = "signature" if count == 1 else "signatures"
    return (
        f'{program.name}: Thank you, {first}! "{title}" now has {count:,} {noun}. '
        f"Reply STOP to cancel."
    )


def already_subscribed(program: Program) -> str:
    """JOIN or START from a number that is already in."""
    return f"{program.name}: You're already subscribed. {HELP_STOP}"


def opt_out_confirmation(program: Program) -> str:
    """The single confirmation after STOP; nothing follows it."""
    return (
        f"{program.name}: You're unsubscribed and will receive no more messages. "
        f"Reply START to resubscribe."
    )


def help_reply(program: Program) -> str:
    """HELP / INFO / AYUDA, in every state."""
    return (
        f"{program.name}: Help at {program.help_contact}. {_frequency(program)} {RATES} "
        f"Reply STOP to cancel.{_terms(program)}"
    )


def fallback(program: Program) -> str:
    """One short answer to a text no keyword matched, for subscribers only."""
    return f"{program.name}: Sorry, we didn't get that. {HELP_STOP}"


def no_open_petition(program: Program) -> str:
    """SIGN while no campaign is active."""
    return f"{program.name}: There's no open petition right now. {HELP_STOP}"
