"""The README and CI must say what the code does."""

from pathlib import Path

from hopsplane.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        if name in ("smtp_username", "smtp_password"):
            assert "`HOPSPLANE_SMTP_USERNAME` / `HOPSPLANE_SMTP_PASSWORD`" in readme
            continue
        if name in ("auth0_client_id", "auth0_client_secret"):
            assert "`HOPSPLANE_AUTH0_CLIENT_ID` / `HOPSPLANE_AUTH0_CLIENT_SECRET`" in readme
            continue
        assert f"`HOPSPLANE_{name.upper()}`" in readme, f"HOPSPLANE_{name.upper()} undocumented"


def test_ci_runs_the_readme_test_command_as_written() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    line = next(li for li in ci.splitlines() if li.startswith("TEST_COMMAND="))
    command = line.split("=", 1)[1].strip('"')
    assert command in readme


def test_ci_runs_the_readme_second_tier_command_and_the_default_run_skips_it() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    line = next(li for li in ci.splitlines() if li.startswith("SLOW_COMMAND="))
    command = line.split("=", 1)[1].strip('"')
    assert command.endswith("-m slow") and command in readme
    assert '"$SLOW_COMMAND"' in ci  # run, not only checked
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "addopts = \"-ra --strict-markers -m 'not slow'\"" in pyproject
