"""Create (or update) the team user through MLflow's basic-auth API, as the admin.

Run by ``team/up.sh``: ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` are the admin's, ``TEAM_USER``
and ``TEAM_PASSWORD`` the user to create. Prints one line; never prints a password.
"""

from __future__ import annotations

import os
import sys

from mlflow.exceptions import MlflowException
from mlflow.server import get_app_client


def ensure_user(uri: str, username: str, password: str) -> str:
    """Create ``username`` or, if it exists, set its password; returns what was done."""
    auth = get_app_client("basic-auth", tracking_uri=uri)
    try:
        auth.get_user(username)
    except MlflowException:
        auth.create_user(username=username, password=password)
        return "created"
    auth.update_user_password(username=username, password=password)
    return "exists (password set)"


if __name__ == "__main__":
    user = os.environ["TEAM_USER"]
    done = ensure_user(sys.argv[1], user, os.environ["TEAM_PASSWORD"])
    print(f"team-up: user {user!r} {done}")
