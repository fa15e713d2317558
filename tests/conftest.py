"""Fixtures: the app on SQLite and on PostgreSQL, clients, and factories.

Every test that uses ``app`` runs once per backend (set ASYE_TEST_BACKENDS=sqlite to
run one). The schema is built from the Alembic migrations once per backend; each test
then gets a fresh database: a copy of the migrated SQLite file, or PostgreSQL tables
truncated after the test.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask, g
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import text

from booking.app import create_app
from booking.extensions import db
from booking.models import (
    LONDON,
    NQSW,
    Course,
    CourseLength,
    Employer,
    EmployerOption,
    Programme,
    Role,
    Session,
    User,
)

PG_SERVER = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = [b for b in os.environ.get("ASYE_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]


def _config(uri: str, tmp: Path) -> dict[str, Any]:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": uri,
        "INSTANCE_DIR": str(tmp),
        "WTF_CSRF_ENABLED": False,
        "MAIL_DELIVER": False,
        "BASE_URL": "http://asye.test",
        "DEMO": False,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
    }


def migrate_schema(app: Flask) -> None:
    """Build the schema from the migrations, as production does."""
    with app.app_context():
        upgrade(revision="heads")
        db.engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sqlite-template")
    path = folder / "template.sqlite3"
    migrate_schema(create_app(_config(f"sqlite:///{path}", folder)))
    return path


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = f"asye_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        admin = psycopg.connect(PG_SERVER, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL is not reachable at {PG_SERVER}: {error}", pytrace=False)
    admin.execute(f'CREATE DATABASE "{name}"')
    url = re.sub(r"/[^/]*$", f"/{name}", PG_SERVER).replace(
        "postgresql://", "postgresql+psycopg://"
    )
    migrate_schema(create_app(_config(url, tmp_path_factory.mktemp("pg"))))
    yield url
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def app(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    if backend == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "test.sqlite3"
        shutil.copy(template, path)
        uri = f"sqlite:///{path}"
    else:
        uri = request.getfixturevalue("postgres_url")
    application = create_app(_config(uri, tmp_path))

    # The fixture keeps an app context pushed and Flask reuses it for test requests,
    # so Flask-Login's cached user in ``g`` would leak from one request to the next.
    @application.before_request
    def _forget_cached_user() -> None:
        g.pop("_login_user", None)

    with application.app_context():
        yield application
        db.session.remove()
        if backend == "postgresql":
            tables = ", ".join(
                f'"{t.name}"' for t in db.metadata.sorted_tables if t.name != "alembic_version"
            )
            with db.engine.begin() as connection:
                connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


def sign_in(client: FlaskClient, user: User) -> FlaskClient:
    """Sign a test client in as ``user`` without the emailed link."""
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True
    return client


def london(day: date, clock: time) -> datetime:
    """Return a UTC datetime for a Europe/London wall-clock time."""
    return datetime.combine(day, clock, tzinfo=LONDON).astimezone(UTC)


FUTURE = date.today() + timedelta(days=60)


@pytest.fixture
def make_programme(app: Flask) -> Callable[..., Programme]:
    def make(**overrides: Any) -> Programme:
        start = date(FUTURE.year - 1, 9, 1)
        fields: dict[str, Any] = {
            "slug": f"prog-{uuid.uuid4().hex[:8]}",
            "name": "Test ASYE Programme",
            "host_name": "Test NHS Trust",
            "starts_on": start,
            "ends_on": date(FUTURE.year + 1, 8, 31),
            "published": True,
        }
        fields.update(overrides)
        programme = Programme(**fields)
        db.session.add(programme)
        db.session.commit()
        return programme

    return make


@pytest.fixture
def programme(make_programme: Callable[..., Programme]) -> Programme:
    return make_programme()


@pytest.fixture
def make_course(app: Flask, programme: Programme) -> Callable[..., Course]:
    def make(**overrides: Any) -> Course:
        fields: dict[str, Any] = {
            "programme": programme,
            "code": f"course-{uuid.uuid4().hex[:6]}",
            "title": "Mental Capacity Act in Practice",
            "length": CourseLength.FULL_DAY,
        }
        fields.update(overrides)
        course = Course(**fields)
        db.session.add(course)
        db.session.commit()
        return course

    return make


@pytest.fixture
def make_session(app: Flask, make_course: Callable[..., Course]) -> Callable[..., Session]:
    def make(course: Course | None = None, *, day: date = FUTURE, **overrides: Any) -> Session:
        course = course or make_course()
        half = course.length is CourseLength.HALF_DAY
        fields: dict[str, Any] = {
            "course": course,
            "starts_at": london(day, time(9, 30)),
            "ends_at": london(day, time(13, 0) if half else time(16, 30)),
            "capacity": 30,
        }
        fields.update(overrides)
        session = Session(**fields)
        db.session.add(session)
        db.session.commit()
        return session

    return make


@pytest.fixture
def make_employer(app: Flask) -> Callable[..., Employer]:
    def make(**overrides: Any) -> Employer:
        fields: dict[str, Any] = {
            "name": f"Employer {uuid.uuid4().hex[:6]}",
            "option": EmployerOption.TRAINING_ONLY,
            "billing_email": "finance@employer.example",
        }
        fields.update(overrides)
        employer = Employer(**fields)
        db.session.add(employer)
        db.session.commit()
        return employer

    return make


@pytest.fixture
def make_user(app: Flask) -> Callable[..., User]:
    def make(role: Role = Role.COORDINATOR, **overrides: Any) -> User:
        fields: dict[str, Any] = {
            "email": f"user-{uuid.uuid4().hex[:8]}@example.org",
            "name": "Test Person",
            "role": role,
        }
        fields.update(overrides)
        user = User(**fields)
        db.session.add(user)
        db.session.commit()
        return user

    return make


@pytest.fixture
def make_nqsw(
    app: Flask,
    programme: Programme,
    make_employer: Callable[..., Employer],
    make_user: Callable[..., User],
) -> Callable[..., NQSW]:
    def make(employer: Employer | None = None, **overrides: Any) -> NQSW:
        user = make_user(Role.NQSW, name=overrides.pop("name", "Nia Social-Worker"))
        fields: dict[str, Any] = {
            "user": user,
            "employer": employer or make_employer(),
            "programme": programme,
            "swe_number": f"SW{uuid.uuid4().int % 10**7:07d}",
            "asye_start": programme.starts_on,
            "fte": 1.0,
            "assessor_email": "assessor@example.org",
            "line_manager_email": "manager@example.org",
        }
        fields.update(overrides)
        nqsw = NQSW(**fields)
        db.session.add(nqsw)
        db.session.commit()
        return nqsw

    return make


@pytest.fixture
def coordinator(make_user: Callable[..., User]) -> User:
    return make_user(Role.COORDINATOR, name="Cora Coordinator")
