"""Optional login: ``AUTOVOICE_AUTH=user:password[,user2:password2]`` turns on Gradio's login page.

Handlers learn who is asking from ``gr.Request.username``; jobs and voices then record it.
"""

from __future__ import annotations

import os
from typing import Any

from studio.errors import StudioError

ENV_VAR = "AUTOVOICE_AUTH"


def parse_auth(value: str | None) -> list[tuple[str, str]]:
    """``"alice:pw1,bob:pw2"`` -> ``[("alice", "pw1"), ("bob", "pw2")]``; empty or unset -> no login.

    Raises:
        StudioError: an entry without ``:``, or an empty user or password.
    """
    pairs = []
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        user, sep, password = item.partition(":")
        if not sep or not user.strip() or not password:
            raise StudioError(f"{ENV_VAR} must be user:password (comma-separated for several users), "
                              f"not {user.strip() or '?'}:***")
        pairs.append((user.strip(), password))
    return pairs


def auth_from_env(environ: dict[str, str] | None = None) -> list[tuple[str, str]]:
    env = os.environ if environ is None else environ
    return parse_auth(env.get(ENV_VAR))


def username(request: Any) -> str:
    """The logged-in user of a Gradio request, or ``""`` without login."""
    return str(getattr(request, "username", None) or "") if request is not None else ""
