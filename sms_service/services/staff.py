"""Console accounts: create, list, disable, check a password. Callers own the transaction.

Passwords are hashed with argon2id (argon2-cffi's defaults, the RFC 9106 low-memory
profile); a hash made with older parameters is replaced on the next good login. A check
against an unknown email still spends one hash, so timing does not tell which emails exist.
"""

from __future__ import annotations

import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlmodel import Session

from sms_service.domain.phones import InvalidPhoneNumber, to_e164
from sms_service.domain.zones import zone_named
from sms_service.errors import BadRequest, NotFound
from sms_service.models import StaffRole, StaffUser, utcnow

MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # argon2 takes any length; this bounds the work a request can cause
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{2,}$")
_hasher = PasswordHasher()
_UNKNOWN_USER_HASH = _hasher.hash(secrets.token_urlsafe(16))


def normalise_email(email: str) -> str:
    """Trimmed and lower-cased; BadRequest when it does not look like an address."""
    value = (email or "").strip().lower()
    if not _EMAIL.match(value):
        raise BadRequest(f"{email!r} is not an email address")
    return value


def check_role(role: str) -> StaffRole:
    """The role named ``role``; BadRequest naming the choices otherwise."""
    try:
        return StaffRole(role)
    except ValueError:
        choices = ", ".join(r.value for r in StaffRole)
        raise BadRequest(f"role must be one of {choices}") from None


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``; BadRequest when it is too short or too long."""
    if len(password) < MIN_PASSWORD:
        raise BadRequest(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise BadRequest(f"a password has at most {MAX_PASSWORD} characters")
    return _hasher.hash(password)


def new_session_token() -> str:
    """A fresh random token; putting it on an account ends that account's sessions."""
    return secrets.token_hex(16)


def create_user(
    *,
    session: Session,
    email: str,
    role: str,
    password: str,
    timezone: str | None = None,
    phone: str | None = None,
) -> StaffUser:
    """Add an active account; the email must be new. ``timezone`` is the zone its pages
    show and take times in; ``phone`` receives its test texts."""
    address = normalise_email(email)
    staff_role = check_role(role)
    if timezone:
        try:
            zone_named(timezone)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    if phone:
        try:
            phone = to_e164(phone)
        except InvalidPhoneNumber as exc:
            raise BadRequest(f"phone: {exc}") from None
    if find_user(session=session, email=address) is not None:
        raise BadRequest(f"an account for {address} already exists")
    user = StaffUser(
        email=address,
        password_hash=hash_password(password),
        role=staff_role,
        active=True,
        session_token=new_session_token(),
        timezone=timezone or None,
        phone=phone or None,
    )
    session.add(user)
    session.flush()
    return user


def find_user(*, session: Session, email: str) -> StaffUser | None:
    """The account for ``email`` (any case), or None."""
    address = (email or "").strip().lower()
    return session.execute(select(StaffUser).where(StaffUser.email == address)).scalar_one_or_none()


def list_users(*, session: Session) -> list[StaffUser]:
    """Every account, by email."""
    return list(session.execute(select(StaffUser).order_by(StaffUser.email)).scalars())


def count_users(*, session: Session) -> int:
    """How many accounts exist (active or not)."""
    return session.execute(select(func.count()).select_from(StaffUser)).scalar_one()


def disable_user(*, session: Session, email: str) -> StaffUser:
    """Disable an account and end its sessions; NotFound when there is none."""
    user = find_user(session=session, email=email)
    if user is None:
        raise NotFound(f"no account for {email}")
    user.active = False
    user.session_token = new_session_token()
    session.add(user)
    session.flush()
    return user


def authenticate(*, session: Session, email: str, password: str) -> StaffUser | None:
    """The active account whose password this is, or None (same work either way)."""
    user = find_user(session=session, email=email)
    if len(password) > MAX_PASSWORD:
        return None
    try:
        _hasher.verify(user.password_hash if user else _UNKNOWN_USER_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = utcnow()
    session.add(user)
    session.flush()
    return user


def change_password(
    *, session: Session, user_id: int, current: str, new: str, confirm: str
) -> StaffUser:
    """Give the account a new password once ``current`` is its password; BadRequest when
    it is not, when the two new ones differ, or when the new one is too short, too long or
    the same. The account gets a new session token, which ends its other sessions."""
    user = session.get(StaffUser, user_id)
    if user is None or not user.active:
        raise NotFound("no such active account")
    try:
        if len(current) > MAX_PASSWORD:
            raise VerificationError
        _hasher.verify(user.password_hash, current)
    except (VerificationError, InvalidHashError):
        raise BadRequest("the current password is not right") from None
    if new != confirm:
        raise BadRequest("the two new passwords differ")
    if new == current:
        raise BadRequest("the new password is the current one")
    user.password_hash = hash_password(new)
    user.session_token = new_session_token()
    session.add(user)
    session.flush()
    return user
