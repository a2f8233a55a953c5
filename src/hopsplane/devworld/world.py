"""The Hopsworks stand-in of `hopsplane dev`, started in the process and registered as a
cluster through the clusters service (its API keys encrypted like any cluster's).

The stand-in keeps its users and projects in memory; the world saves them in the data
folder when it stops and loads them when it starts, so the projects the database points at
are still there after a restart. Its keys are new at every start (the cluster row is
updated with them and with the stand-in's new port)."""

from __future__ import annotations

import json
import secrets
import threading
from pathlib import Path

import structlog
from pydantic import SecretStr
from sqlalchemy.orm import Session

from hopsplane.clusters import service as clusters
from hopsplane.clusters.schemas import ClusterCreate, ClusterOut, ClusterUpdate
from hopsplane.crypto import SecretBox
from hopsplane.devworld.hopsworks_standin import FakeHopsworks
from hopsplane.errors import NotFound

log = structlog.get_logger(__name__)

CLUSTER_NAME = "local-standin"
"""The name of the stand-in's cluster row (what `hopsplane clusters check` takes)."""
STATE_FILE = "hopsworks-standin.json"
SAVE_EVERY_SECONDS = 5.0
MAX_ACCOUNTS = 1000


def start_standin(data_dir: Path) -> FakeHopsworks:
    """A stand-in on a free 127.0.0.1 port with new keys, holding what it held when it was
    last stopped with :func:`stop_standin`."""
    standin = FakeHopsworks(api_key=secrets.token_urlsafe(24),
                            auth_api_key=secrets.token_urlsafe(24))
    saved = data_dir / STATE_FILE
    if saved.exists():
        try:
            standin.restore(json.loads(saved.read_text()))
        except (ValueError, KeyError, TypeError) as exc:  # a damaged file: start empty
            log.warning("the stand-in's saved state is unreadable; starting empty",
                        path=str(saved), error=str(exc))
    return standin


def save_standin(standin: FakeHopsworks, data_dir: Path) -> None:
    """Write what the stand-in holds to the data folder, whole or not at all."""
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / STATE_FILE
    partial = target.with_name(f"{STATE_FILE}.{threading.get_ident()}.tmp")  # one per writer
    partial.write_text(json.dumps(standin.snapshot()))
    partial.replace(target)


def keep_saved(standin: FakeHopsworks, data_dir: Path, stop: threading.Event,
               every: float = SAVE_EVERY_SECONDS) -> threading.Thread:
    """Save the stand-in every ``every`` seconds until ``stop`` (a `kill -9` of `hopsplane
    dev` then loses at most that much of what it made on the cluster)."""
    def loop() -> None:
        while not stop.wait(every):
            try:
                save_standin(standin, data_dir)
            except OSError as exc:
                log.warning("could not save the stand-in's state", error=str(exc))

    thread = threading.Thread(target=loop, name="standin-save", daemon=True)
    thread.start()
    return thread


def stop_standin(standin: FakeHopsworks, data_dir: Path) -> None:
    """Save what the stand-in holds, then stop it."""
    try:
        save_standin(standin, data_dir)
    finally:
        standin.close()


def register_standin(session: Session, box: SecretBox, standin: FakeHopsworks) -> ClusterOut:
    """The stand-in as the cluster named :data:`CLUSTER_NAME`: registered on the first
    start, pointed at this start's port and keys afterwards (its status, which an operator
    may have changed, is left alone)."""
    api_key = SecretStr(standin.state.api_key)
    auth_key = SecretStr(standin.state.auth_api_key)
    try:
        existing = clusters.find_cluster(session, CLUSTER_NAME)
    except NotFound:
        existing = None
    if existing is None:
        return clusters.register_cluster(session, box, ClusterCreate(
            name=CLUSTER_NAME, api_url=standin.url, api_key=api_key, auth_api_key=auth_key,
            max_users=MAX_ACCOUNTS))
    return clusters.update_cluster(session, box, existing.id, ClusterUpdate(
        api_url=standin.url, api_key=api_key, auth_api_key=auth_key))
