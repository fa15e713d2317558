"""Accounts: sign-in by emailed single-use link, employers and their contacts."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update

from .errors import BookingError, InvalidInput
from .extensions import db
from .models import Employer, EmployerOption, Role, SignInToken, User, utcnow
from .notifications import queue_message
from .tokens import hash_token, new_token


def normalise_email(email: str) -> str:
    """Return an address in the form accounts are keyed by."""
    return email.strip().lower()


def user_by_email(email: str) -> User | None:
    """Return the account for an address, if any."""
    return db.session.scalar(select(User).where(User.email == normalise_email(email)))


def issue_sign_in_link(user: User, *, now: datetime | None = None) -> str:
    """Create a single-use sign-in token for ``user`` and return the raw token."""
    now = now or utcnow()
    token = new_token()
    minutes = current_app.config["SIGN_IN_LINK_MINUTES"]
    db.session.add(
        SignInToken(
            user=user,
            token_hash=hash_token(token),
            created_at=now,
            expires_at=now + timedelta(minutes=minutes),
        )
    )
    return token


def request_sign_in(email: str, *, now: datetime | None = None) -> bool:
    """Mail a sign-in link if the address has an active account; say nothing either way."""
    user = user_by_email(email)
    if user is None or not user.active:
        return False
    token = issue_sign_in_link(user, now=now)
    queue_message(
        "sign_in_link",
        user.email,
        "Your sign-in link for ASYE training",
        user=user,
        token=token,
        minutes=current_app.config["SIGN_IN_LINK_MINUTES"],
    )
    db.session.commit()
    return True


class SignInLinkInvalid(BookingError):
    """The link is unknown, used or expired."""

    status_code = 400


def redeem_sign_in(token: str, *, now: datetime | None = None) -> User:
    """Consume a sign-in token exactly once and return its user."""
    now = now or utcnow()
    digest = hash_token(token)
    # The guarded update makes a second use fail even when two requests race.
    result = db.session.execute(
        update(SignInToken)
        .where(
            SignInToken.token_hash == digest,
            SignInToken.used_at.is_(None),
            SignInToken.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        db.session.rollback()
        raise SignInLinkInvalid(
            "This sign-in link has expired or has already been used. Ask for a new one."
        )
    record = db.session.scalar(select(SignInToken).where(SignInToken.token_hash == digest))
    assert record is not None
    user = record.user
    if not user.active:
        db.session.rollback()
        raise SignInLinkInvalid("This account is not active.")
    db.session.commit()
    return user


def sign_in_token_state(token: str, *, now: datetime | None = None) -> bool:
    """Return True if the token could still be used (without using it)."""
    now = now or utcnow()
    record = db.session.scalar(
        select(SignInToken).where(SignInToken.token_hash == hash_token(token))
    )
    return record is not None and record.used_at is None and record.expires_at > now


def create_user(email: str, name: str, role: Role, *, employer: Employer | None = None) -> User:
    """Add an account in the caller's transaction, refusing a duplicate address."""
    email = normalise_email(email)
    if user_by_email(email) is not None:
        raise InvalidInput(f"An account already exists for {email}.", field="email")
    user = User(email=email, name=name.strip(), role=role, employer=employer)
    db.session.add(user)
    return user


def register_employer(
    *,
    name: str,
    option: EmployerOption,
    billing_name: str = "",
    billing_email: str = "",
    billing_address: str = "",
    po_number: str = "",
    po_required: bool = False,
) -> Employer:
    """Register an employer with its programme option and billing contact."""
    name = name.strip()
    if db.session.scalar(select(Employer).where(Employer.name == name)) is not None:
        raise InvalidInput(f"An employer called {name} is already registered.", field="name")
    employer = Employer(
        name=name,
        option=option,
        billing_name=billing_name.strip() or name,
        billing_email=normalise_email(billing_email),
        billing_address=billing_address.strip(),
        po_number=po_number.strip(),
        po_required=po_required,
    )
    db.session.add(employer)
    db.session.commit()
    return employer


def update_employer(employer: Employer, **fields: object) -> Employer:
    """Change an employer's details."""
    name = str(fields.get("name", employer.name)).strip()
    clash = db.session.scalar(
        select(Employer.id).where(Employer.name == name, Employer.id != employer.id)
    )
    if clash is not None:
        raise InvalidInput(f"An employer called {name} is already registered.", field="name")
    if "name" in fields:
        fields["name"] = name
    for key, value in fields.items():
        if key == "billing_email" and isinstance(value, str):
            value = normalise_email(value)
        setattr(employer, key, value)
    db.session.commit()
    return employer


def invite_contact(employer: Employer, *, email: str, name: str) -> User:
    """Create an employer contact's account and mail them a sign-in link."""
    user = create_user(email, name, Role.EMPLOYER_CONTACT, employer=employer)
    db.session.flush()
    token = issue_sign_in_link(user)
    queue_message(
        "contact_invited",
        user.email,
        f"You have been invited to manage {employer.name}'s ASYE training",
        user=user,
        employer=employer,
        token=token,
    )
    db.session.commit()
    return user
