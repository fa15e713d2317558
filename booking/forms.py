"""WTForms for the pages; every form carries a CSRF token through Flask-WTF."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from wtforms import (
    BooleanField,
    DateField,
    DecimalField,
    EmailField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
    TimeField,
    URLField,
)
from wtforms.validators import (
    URL,
    DataRequired,
    Email,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
)

from .models import CourseLength, EmployerOption, MessageAudience


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class SignInForm(FlaskForm):
    email = EmailField(
        "Email address",
        filters=[_strip],
        validators=[
            DataRequired("Enter your email address"),
            Email("Enter an email address like name@example.nhs.uk"),
        ],
    )


class ConfirmForm(FlaskForm):
    """A form with nothing but its CSRF token, for buttons that change state."""


class CancelSessionForm(FlaskForm):
    reason = TextAreaField(
        "Reason, sent to everyone booked",
        validators=[DataRequired("Say why the session is cancelled"), Length(max=2000)],
    )


class MoveForm(FlaskForm):
    session_id = RadioField(
        "Choose the new date", coerce=int, validators=[InputRequired("Choose a date")]
    )


class _NQSWIdentity:
    """Who the NQSW is: asked once, at enrolment."""

    name = StringField(
        "Full name", validators=[DataRequired("Enter the NQSW's name"), Length(max=200)]
    )
    email = EmailField(
        "Email address",
        validators=[DataRequired("Enter an email address"), Email("Enter a valid email address")],
    )
    swe_number = StringField(
        "Social Work England number",
        validators=[
            DataRequired("Enter the Social Work England number"),
            Regexp(r"^\s*[Ss][Ww]\s*\d{1,8}\s*$", message="Enter a number like SW123456"),
        ],
    )


class NQSWDetailsForm(FlaskForm):
    """What an employer or coordinator may change after enrolment."""

    asye_start = DateField(
        "ASYE start date", validators=[InputRequired("Enter the ASYE start date as YYYY-MM-DD")]
    )
    fte = DecimalField(
        "Full-time equivalent (FTE)",
        places=2,
        default=1,
        validators=[
            InputRequired("Enter the FTE, for example 1 or 0.6"),
            NumberRange(min=0.01, max=1, message="FTE must be more than 0 and at most 1"),
        ],
    )
    assessor_email = EmailField(
        "ASYE assessor's email", validators=[Optional(), Email("Enter a valid email address")]
    )
    line_manager_email = EmailField(
        "Line manager's email", validators=[Optional(), Email("Enter a valid email address")]
    )


# The identity fields are declared first, so the form and its error summary list them first.
class NQSWForm(_NQSWIdentity, NQSWDetailsForm):
    """Enrol an NQSW."""


class ImportForm(FlaskForm):
    file = FileField(
        "CSV file",
        validators=[
            FileRequired("Choose a CSV file to upload"),
            FileAllowed(["csv", "txt"], "The file must be a .csv file"),
        ],
    )


class EmployerForm(FlaskForm):
    name = StringField(
        "Employer name", validators=[DataRequired("Enter the employer's name"), Length(max=200)]
    )
    option = RadioField(
        "Programme option",
        choices=[SelectChoice(o.value, o.label) for o in EmployerOption],
        validators=[InputRequired("Choose the employer's option")],
    )
    billing_name = StringField("Billing name", validators=[Optional(), Length(max=200)])
    billing_email = EmailField(
        "Billing contact email", validators=[Optional(), Email("Enter a valid email address")]
    )
    billing_address = TextAreaField("Billing address", validators=[Optional(), Length(max=1000)])
    po_number = StringField("Purchase order number", validators=[Optional(), Length(max=80)])
    po_required = BooleanField("A purchase order number is required on invoices")


class ContactForm(FlaskForm):
    name = StringField(
        "Full name", validators=[DataRequired("Enter the contact's name"), Length(max=200)]
    )
    email = EmailField(
        "Email address",
        validators=[DataRequired("Enter an email address"), Email("Enter a valid email address")],
    )


class ProgrammeForm(FlaskForm):
    name = StringField("Programme name", validators=[DataRequired("Enter a name"), Length(max=200)])
    slug = StringField(
        "Short name for web addresses",
        validators=[
            DataRequired("Enter a short name"),
            Regexp(r"^[a-z0-9-]+$", message="Use lower-case letters, digits and hyphens"),
        ],
    )
    host_name = StringField(
        "Host organisation", validators=[DataRequired("Enter the host"), Length(max=200)]
    )
    host_email = EmailField(
        "Host contact email", validators=[Optional(), Email("Enter a valid email address")]
    )
    host_address = TextAreaField("Host address (for invoices)", validators=[Optional()])
    starts_on = DateField("Year starts", validators=[InputRequired("Enter the start date")])
    ends_on = DateField("Year ends", validators=[InputRequired("Enter the end date")])
    protected_days_per_week = DecimalField(
        "Protected training days per week (full time)",
        places=2,
        default=0.5,
        validators=[
            InputRequired("Enter a number"),
            NumberRange(min=0, max=5, message="Between 0 and 5"),
        ],
    )
    window_weeks = IntegerField(
        "Protected-time window (weeks)",
        default=4,
        validators=[
            InputRequired("Enter a number of weeks"),
            NumberRange(min=1, max=52, message="Between 1 and 52"),
        ],
    )
    cancellation_cutoff_working_days = IntegerField(
        "Late cancellation cut-off (working days)",
        default=5,
        validators=[
            InputRequired("Enter a number of days"),
            NumberRange(min=0, max=60, message="Between 0 and 60"),
        ],
    )
    waitlist_hold_hours = IntegerField(
        "Waiting-list offer hold time (hours)",
        default=48,
        validators=[
            InputRequired("Enter a number of hours"),
            NumberRange(min=1, max=336, message="Between 1 and 336"),
        ],
    )


class CourseForm(FlaskForm):
    code = StringField(
        "Course code",
        validators=[
            DataRequired("Enter a code"),
            Regexp(r"^[a-z0-9-]+$", message="Use lower-case letters, digits and hyphens"),
        ],
    )
    title = StringField("Title", validators=[DataRequired("Enter a title"), Length(max=200)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=4000)])
    length = RadioField(
        "Length",
        choices=[SelectChoice(length.value, length.label) for length in CourseLength],
        validators=[InputRequired("Choose half day or full day")],
    )
    optional = BooleanField("Optional workshop")


class SessionForm(FlaskForm):
    date = DateField("Date", validators=[InputRequired("Enter the date as YYYY-MM-DD")])
    start_time = TimeField(
        "Start time (UK time)", validators=[InputRequired("Enter the start time, like 09:30")]
    )
    end_time = TimeField(
        "End time (UK time)", validators=[InputRequired("Enter the end time, like 13:00")]
    )
    capacity = IntegerField(
        "Capacity",
        default=30,
        validators=[
            InputRequired("Enter the number of places"),
            NumberRange(min=1, max=1000, message="Enter a number of places from 1 to 1000"),
        ],
    )
    mode = StringField(
        "Mode", default="Online (MS Teams)", validators=[DataRequired("Enter the mode")]
    )
    region = StringField(
        "Region (leave blank if open to all)", validators=[Optional(), Length(max=80)]
    )
    joining_url = URLField(
        "Joining link", validators=[Optional(), URL(message="Enter a full web address")]
    )
    materials_url = URLField(
        "Materials link", validators=[Optional(), URL(message="Enter a full web address")]
    )
    facilitator = StringField("Facilitator", validators=[Optional(), Length(max=200)])


class BookForSomeoneForm(FlaskForm):
    nqsw_id = SelectField("NQSW", coerce=int, validators=[InputRequired("Choose an NQSW")])
    override_reason = TextAreaField(
        "Reason for booking as an exception (optional)",
        filters=[_strip],
        validators=[Optional(), Length(max=500, message="Keep the reason under 500 characters")],
    )


class AllocationForm(FlaskForm):
    time_limit = IntegerField(
        "Time limit in seconds",
        default=30,
        validators=[
            InputRequired("Enter a time limit in seconds"),
            NumberRange(min=1, max=600, message="Enter a time limit from 1 to 600 seconds"),
        ],
    )
    allow_moves = BooleanField("Allow existing bookings to move to another date")
    include_optional = BooleanField("Include optional workshops")


class SessionMessageForm(FlaskForm):
    audience = RadioField(
        "Who should get it?",
        choices=[SelectChoice(a.value, a.label) for a in MessageAudience],
        default=MessageAudience.BOOKED.value,
        validators=[InputRequired("Choose who gets the message")],
    )
    subject = StringField(
        "Subject",
        filters=[_strip],
        validators=[DataRequired("Enter a subject"), Length(max=200)],
    )
    body = TextAreaField(
        "Message",
        validators=[
            DataRequired("Enter the message"),
            Length(max=5000, message="Keep the message under 5,000 characters"),
        ],
    )
    # Random per form shown: the same form sent twice (a double click) sends one message.
    form_token = HiddenField()
