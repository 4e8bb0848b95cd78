"""``python -m actions.server -p 5055``: the rasa-sdk action server, with the door locked.

rasa-sdk's own server (``python -m rasa_sdk``) runs any action for whoever posts to ``/webhook`` with a
tracker of their making: ``{"next_action": "action_resume_task", "tracker": {"slots": {"verified": true,
"active_task": "balance", "customer_id": "C-0001"}}}`` answered with that customer's balance, no PIN asked.
This is the same server with one check in front: every route but ``GET /health`` needs
``Authorization: Bearer <RASA_TOKEN>`` (the stack's shared secret, compared in constant time; anything else
gets 401). Rasa sends it on each action call (``bot/rasa/endpoints.yml``: ``action_endpoint.headers``). The
secret comes from the environment only, never the command line. It listens on ``SANIC_HOST`` (127.0.0.1
unless set).
"""

from __future__ import annotations

import hmac
import logging
import os
import sys

from rasa_sdk import utils
from rasa_sdk.constants import APPLICATION_ROOT_LOGGER_NAME
from rasa_sdk.endpoint import create_app, create_argument_parser
from rasa_sdk.plugin import plugin_manager
from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/health"})
"""Routes that need no secret (they say nothing but "ok")."""


def authorised(header: str | None, secret: bytes) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <secret>`` (constant-time compare)."""
    scheme, _, supplied = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(supplied.strip().encode(), secret)


def main(argv: list[str] | None = None) -> int:
    """Run the action server (arguments as ``python -m rasa_sdk``'s) behind the secret check."""
    args = create_argument_parser().parse_args(argv)
    secret = os.environ.get("RASA_TOKEN", "").encode()
    if not secret:
        print("actions.server: RASA_TOKEN is not set (the stack's shared secret)", file=sys.stderr)
        return 2
    utils.configure_colored_logging(args.loglevel)
    root = logging.getLogger(APPLICATION_ROOT_LOGGER_NAME)
    utils.configure_file_logging(root, args.log_file, args.loglevel, args.logging_config_file)
    utils.update_sanic_log_level()
    app = create_app(args.actions, cors_origins=None, auto_reload=False)

    @app.middleware("request")  # type: ignore[untyped-decorator]
    async def check_secret(request: Request) -> HTTPResponse | None:
        if request.path in OPEN_PATHS and request.method == "GET":
            return None
        if authorised(request.headers.get("Authorization"), secret):
            return None
        log.warning("refused %s %s: no or wrong secret", request.method, request.path)
        return response.json({"error": "unauthorized"}, status=401)

    plugin_manager().hook.attach_sanic_app_extensions(app=app)
    host = os.environ.get("SANIC_HOST", "127.0.0.1")
    log.info("action server on http://%s:%d (every route but /health needs the secret)", host, args.port)
    app.run(host, args.port, workers=utils.number_of_sanic_workers())
    return 0


if __name__ == "__main__":
    sys.exit(main())
