"""The stand-in's users and projects survive a restart of `hopsplane dev` (saved in the data
folder), with what the handlers expect of them: sets of Jupyter users, int ids."""

from __future__ import annotations

from pathlib import Path

import httpx

from hopsplane.devworld import world
from hopsplane.devworld.hopsworks_standin import PREFIX


def test_a_restarted_standin_has_its_users_projects_and_workloads(tmp_path: Path) -> None:
    first = world.start_standin(tmp_path)
    try:
        user = first.state.add_user("ada@example.com")
        status, _ = first.create_project_as(user["username"], "demo_project")
        assert status == 200
        [pid] = first.state.projects
        first.start_jupyter(pid, user["username"])
        first.deploy(pid, "model", user["username"])
    finally:
        world.stop_standin(first, tmp_path)

    again = world.start_standin(tmp_path)
    try:
        assert again.state.api_key != first.state.api_key  # new keys at every start
        project = again.state.projects[pid]
        assert project["jupyter"] == {user["username"]}
        assert list(project["servings"]) == [700]
        assert again.state.user_by_email("ada@example.com") == user
        # and it answers for them with its new key
        r = httpx.get(f"{again.url}{PREFIX}/admin/projects",
                      headers={"Authorization": f"ApiKey {again.state.api_key}"})
        assert r.status_code == 200
        assert [p["name"] for p in r.json()["items"]] == ["demo_project"]
        # a new project does not reuse an id
        status, _ = again.create_project_as(user["username"], "second")
        assert status == 200 and max(again.state.projects) == pid + 1
    finally:
        again.close()


def test_an_unreadable_saved_state_starts_empty(tmp_path: Path) -> None:
    (tmp_path / world.STATE_FILE).write_text("{not json")
    standin = world.start_standin(tmp_path)
    try:
        assert standin.state.projects == {} and standin.state.users == {}
    finally:
        standin.close()
