"""Board accounts: roles, argon2id password hashes, and the rate limit on failed sign-ins.

Roles climb: a viewer reads; an agent acts on cases; a lead also reassigns and
reopens; an admin also manages accounts. A person's Slack id is their identity
in case events, so the board and Slack agree on who did what.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlmodel import Session, col

from monitor.store.tables import LoginFailureRow, UserRow

ROLES = ("viewer", "agent", "lead", "admin")
ROLE_NAMES = {"viewer": "只读", "agent": "客服", "lead": "主管", "admin": "管理员"}
NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
SLACK_ID = re.compile(r"^[UW][A-Z0-9]{2,31}$")
MIN_PASSWORD = 10

_hasher = PasswordHasher()  # argon2id with the library's current defaults
# A hash to verify against when the account does not exist, so a wrong name
# takes as long as a wrong password and does not reveal which names exist.
_DUMMY = _hasher.hash("koubei-no-such-account")


class AccountError(ValueError):
    """An account cannot be created or changed as asked (the message says why)."""


def at_least(role: str, needed: str) -> bool:
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def actor_id(user: UserRow) -> str:
    """The id case events and owners carry: the Slack id where known, else web:<name>."""
    return user.slack_id or f"web:{user.name}"


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"密码至少 {MIN_PASSWORD} 个字符 (password too short)")
    return _hasher.hash(password)


def add_user(
    session: Session,
    name: str,
    role: str,
    now: datetime,
    *,
    password: str | None = None,
    slack_id: str | None = None,
    display_name: str = "",
    oidc_subject: str | None = None,
) -> UserRow:
    if not NAME.match(name):
        raise AccountError(f"user name {name!r}: use 1-64 letters, digits, . _ @ -")
    if role not in ROLES:
        raise AccountError(f"role {role!r}: one of {', '.join(ROLES)}")
    if slack_id is not None and not SLACK_ID.match(slack_id):
        raise AccountError(f"Slack id {slack_id!r}: looks like U0123ABCD (profile, Copy member ID)")
    if find_user(session, name) is not None:
        raise AccountError(f"user {name!r} already exists")
    user = UserRow(
        name=name,
        display_name=display_name or name,
        role=role,
        password_hash=hash_password(password) if password is not None else None,
        slack_id=slack_id,
        oidc_subject=oidc_subject,
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, name: str) -> UserRow | None:
    return session.execute(select(UserRow).where(col(UserRow.name) == name)).scalar_one_or_none()


def check_password(session: Session, name: str, password: str) -> UserRow | None:
    """The active account with this name and password, else None (same cost either way)."""
    user = find_user(session, name)
    stored = user.password_hash if user is not None and user.active else None
    try:
        _hasher.verify(stored or _DUMMY, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or stored is None:
        return None
    if _hasher.check_needs_rehash(stored):
        user.password_hash = _hasher.hash(password)
    return user


def oidc_account(
    session: Session, subject: str, names: list[str], slack_id: str | None
) -> UserRow | None:
    """The account a person signed in at the OpenID provider maps to, or None.

    Only accounts an admin created sign in: first by the subject bound at an
    earlier sign-in, else by name (the provider's user name or verified e-mail)
    for an account not yet bound, which is bound now. The provider's Slack id
    fills an account's empty one, so the board and Slack name the same person.
    """
    user = session.execute(
        select(UserRow).where(col(UserRow.oidc_subject) == subject)
    ).scalar_one_or_none()
    if user is None:
        for name in names:
            found = find_user(session, name)
            if found is not None and found.oidc_subject is None:
                found.oidc_subject = subject
                user = found
                break
    if user is None or not user.active:
        return None
    if slack_id and user.slack_id is None and SLACK_ID.match(slack_id):
        user.slack_id = slack_id
    return user


def names_by_actor(session: Session) -> dict[str, str]:
    """Actor id -> display name, to show people instead of ids."""
    users = session.execute(select(UserRow)).scalars().all()
    return {actor_id(u): u.display_name or u.name for u in users}


# --- failed sign-ins ------------------------------------------------------------


def failures(session: Session, key: str, since: datetime) -> int:
    count = session.execute(
        select(func.count())
        .select_from(LoginFailureRow)
        .where(col(LoginFailureRow.key) == key, col(LoginFailureRow.at) >= since)
    ).scalar_one()
    return int(count)


def record_failure(session: Session, keys: list[str], now: datetime) -> None:
    for key in keys:
        session.add(LoginFailureRow(key=key[:160], at=now))


def forget_failures(session: Session, key: str) -> None:
    session.execute(delete(LoginFailureRow).where(col(LoginFailureRow.key) == key))


def prune_failures(session: Session, now: datetime, keep: timedelta) -> None:
    session.execute(delete(LoginFailureRow).where(col(LoginFailureRow.at) < now - keep))


def update_user(
    session: Session, user: UserRow, *, role: str | None = None, active: bool | None = None
) -> None:
    if role is not None:
        if role not in ROLES:
            raise AccountError(f"role {role!r}: one of {', '.join(ROLES)}")
        user.role = role
    if active is not None:
        user.active = active


def all_users(session: Session) -> list[UserRow]:
    return list(session.execute(select(UserRow).order_by(col(UserRow.name))).scalars())
