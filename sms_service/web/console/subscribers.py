"""``/console/subscribers``: search by number or name, one subscriber's page, tags.

Organisers see numbers masked; a search by number still finds the exact subscriber.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from sms_service.errors import BadRequest, NotFound
from sms_service.services import subscriber_search as svc
from sms_service.web.console.auth import requires
from sms_service.web.console.common import log_action, transaction

bp = Blueprint("subscribers", __name__, url_prefix="/subscribers")


@bp.get("/")
@requires("subscribers")
def index() -> str:
    """Search (``q``: a number or the start of a name), 50 a page, newest first."""
    query = (request.args.get("q") or "").strip()
    after = request.args.get("before", type=int)
    with transaction() as session:
        page = svc.search(session=session, query=query, before=after)
    return render_template("console/subscribers.html", page=page, q=query)


@bp.get("/<int:subscriber_id>")
@requires("subscribers")
def show(subscriber_id: int) -> str:
    """One subscriber: status, tags, signatures (a view of one person's data: audited,
    as a number look-up is)."""
    with transaction() as session:
        try:
            card = svc.card(session=session, subscriber_id=subscriber_id)
        except NotFound:
            abort(404)
        log_action(session, "subscriber.view", str(subscriber_id))
    return render_template("console/subscriber.html", card=card)


@bp.post("/<int:subscriber_id>/tags")
@requires("subscribers")
def tag(subscriber_id: int):
    """Add (``add``) or remove (``remove``) a tag."""
    add, remove = request.form.get("add"), request.form.get("remove")
    try:
        with transaction() as session:
            if add:
                name = svc.add_tag(session=session, subscriber_id=subscriber_id, tag=add)
                log_action(session, "subscriber.tag", str(subscriber_id), tag=name)
            elif remove:
                svc.remove_tag(session=session, subscriber_id=subscriber_id, tag=remove)
                log_action(session, "subscriber.untag", str(subscriber_id), tag=remove)
    except NotFound:
        abort(404)
    except BadRequest as exc:
        flash(str(exc), "error")
    return redirect(url_for(".show", subscriber_id=subscriber_id))
