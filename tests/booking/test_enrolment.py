"""Employers enrol NQSWs one at a time or from a CSV file: all rows or none."""

from __future__ import annotations

import io
from datetime import date

import pytest
from sqlalchemy import func, select

from booking.enrolment import import_csv
from booking.errors import ImportRejected
from booking.extensions import db
from booking.models import NQSW, OutboxMessage, Role, User

from ..conftest import sign_in

HEADER = "name,email,swe_number,asye_start,fte,assessor_email,line_manager_email\n"


@pytest.fixture
def contact(make_employer, make_user):
    return make_user(Role.EMPLOYER_CONTACT, employer=make_employer(name="Riverside Council"))


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_good_csv_enrols_everyone(programme, contact):
    data = (
        HEADER
        + "Ada Lovelace,ada@council.example,SW100001,2026-09-01,1,as@x.example,lm@x.example\n"
        + "Bo Diddley,bo@council.example,sw 100002,01/10/2026,0.6,,\n"
    ).encode()
    added = import_csv(contact.employer, programme, data)
    assert [n.name for n in added] == ["Ada Lovelace", "Bo Diddley"]
    bo = added[1]
    assert bo.swe_number == "SW100002" and bo.asye_start == date(2026, 10, 1) and bo.fte == 0.6
    assert bo.user.role is Role.NQSW and bo.employer_id == contact.employer_id
    assert _count(OutboxMessage) == 2


def test_bad_rows_reject_the_whole_file_with_line_numbers(programme, contact, make_nqsw):
    make_nqsw(swe_number="SW555555")
    data = (
        HEADER
        + "Good Person,good@council.example,SW100001,2026-09-01,1,,\n"
        + ",no-name@council.example,SW100002,2026-09-01,1,,\n"
        + "Bad Email,not-an-email,SW100003,2026-09-01,1,,\n"
        + "\n"
        + "Bad Fte,fte@council.example,SW100004,2026-09-01,1.5,,\n"
        + "Taken Swe,taken@council.example,SW555555,2026-09-01,1,,\n"
        + "Dup Email,good@council.example,SW100006,2026-09-01,1,,\n"
        + "Bad Date,date@council.example,SW100007,2026-13-01,1,,\n"
    ).encode("utf-8-sig")
    with pytest.raises(ImportRejected) as rejected:
        import_csv(contact.employer, programme, data)
    problems = dict(rejected.value.problems)
    assert sorted(problems) == [3, 4, 6, 7, 8, 9]
    assert "name is missing" in problems[3]
    assert "not-an-email" in problems[4]
    assert "FTE 1.5" in problems[6]
    assert "SW555555 is already enrolled" in problems[7]
    assert "email repeats line 2" in problems[8]
    assert "'2026-13-01' is not a date" in problems[9]
    assert _count(NQSW) == 1 and _count(OutboxMessage) == 0
    assert db.session.scalar(select(User).where(User.email == "good@council.example")) is None


def test_missing_columns_and_wrong_encoding_are_reported(programme, contact):
    with pytest.raises(ImportRejected, match="missing column"):
        import_csv(contact.employer, programme, b"name,email\nA,a@b.example\n")
    with pytest.raises(ImportRejected, match="not UTF-8"):
        import_csv(
            contact.employer,
            programme,
            (HEADER + "Zoë,z@x.example,SW1,2026-09-01,1,,\n").encode("utf-16"),
        )


def test_upload_page_lists_each_bad_row(client, programme, contact):
    sign_in(client, contact)
    data = (
        HEADER + "Good,good@council.example,SW100001,2026-09-01,1,,\nBad,bad,SW2,2026-09-01,1,,\n"
    )
    page = client.post(
        "/employer/nqsws/import",
        data={"file": (io.BytesIO(data.encode()), "nqsws.csv")},
        content_type="multipart/form-data",
    )
    html = page.get_data(as_text=True)
    assert page.status_code == 400
    assert "Nothing was imported" in html and 'id="file-error"' in html
    assert '<td class="nhsuk-table__cell">3</td>' in html and "&#39;bad&#39; is not a valid" in html
    assert _count(NQSW) == 0


def test_enrol_one_nqsw_from_the_page(client, programme, contact):
    sign_in(client, contact)
    form = {
        "name": "Cai Jones",
        "email": "cai@council.example",
        "swe_number": "SW123456",
        "asye_start": "2026-09-01",
        "fte": "0.8",
        "assessor_email": "",
        "line_manager_email": "",
    }
    response = client.post("/employer/nqsws/new", data=form)
    assert response.status_code == 302
    nqsw = db.session.scalars(select(NQSW)).one()
    assert nqsw.fte == 0.8 and nqsw.employer_id == contact.employer_id

    again = client.post("/employer/nqsws/new", data={**form, "swe_number": "SW999999"})
    html = again.get_data(as_text=True)
    assert again.status_code == 400
    assert (
        'id="email-error"' in html and "An account already exists for cai@council.example" in html
    )
    assert _count(NQSW) == 1


def test_enrol_form_errors_sit_next_to_fields(client, programme, contact):
    sign_in(client, contact)
    page = client.post("/employer/nqsws/new", data={"name": "", "email": "x", "fte": "2"})
    html = page.get_data(as_text=True)
    assert page.status_code == 400
    for field in ("name", "email", "swe_number", "asye_start", "fte"):
        assert f'id="{field}-error"' in html
    assert _count(NQSW) == 0
