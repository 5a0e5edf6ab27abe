"""Public surfaces with no login: the petition page (``/p/<KEYWORD>``) and the JSON API
(``/api/v1``, bearer tokens) with its OpenAPI document (``/api/openapi.json``)."""

from __future__ import annotations

from flask import Flask, jsonify


def register_public(app: Flask) -> None:
    """Register the petition page, the API (CSRF-exempt: it uses no cookies) and its spec."""
    from sms_service.web.public import api, page
    from sms_service.web.public.api_models import spec
    from sms_service.web.security import exempt_from_csrf

    app.register_blueprint(page.bp)
    app.register_blueprint(exempt_from_csrf(api.bp))

    # Served here rather than by spectree's own route: spectree leaves out every route under
    # its document's folder, and the document belongs beside the API it describes.
    @app.get("/api/openapi.json")
    def openapi_document():
        return jsonify(spec.spec)
