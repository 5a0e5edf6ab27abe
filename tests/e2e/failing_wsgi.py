"""A gunicorn target for test_masked_gunicorn_traceback: the real app plus one route that
fails with a real unique violation naming a phone number."""

from sqlmodel import Session

from sms_service import create_app
from sms_service.models import Subscriber

app = create_app()


@app.get("/fail")
def fail() -> str:
    """Insert the same subscriber twice: PostgreSQL answers ``Key (phone)=(+1…) already exists``."""
    engine = app.extensions["sms_engine"]
    for _ in range(2):
        with Session(engine) as session:
            session.add(Subscriber(phone="+12025550177"))
            session.commit()
    return "unreachable"
