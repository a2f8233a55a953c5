import pytest
from pydantic import ValidationError

from hopsplane.config import DEV_ENCRYPTION_KEY, DEV_SECRET_KEY, Settings, normalise_database_url
from hopsplane.crypto import FERNET_PREFIX, SecretBox
from hopsplane.errors import Invalid


def test_development_runs_with_placeholders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOPSPLANE_SECRET_KEY", raising=False)
    s = Settings(environment="development", _env_file=None)  # type: ignore[call-arg]
    assert s.effective_secret_key == DEV_SECRET_KEY
    assert s.effective_encryption_keys == [DEV_ENCRYPTION_KEY]


@pytest.mark.parametrize(
    ("secret", "keys", "complaint"),
    [
        (None, None, "HOPSPLANE_SECRET_KEY is not set"),
        (DEV_SECRET_KEY, SecretBox.generate_key(), "placeholder"),
        ("s" * 40, DEV_ENCRYPTION_KEY, "development placeholder key"),
        ("s" * 40, None, "HOPSPLANE_ENCRYPTION_KEYS is not set"),
        (f"{'n' * 40},{DEV_SECRET_KEY}", SecretBox.generate_key(), "placeholder"),
    ],
    # ids without the generated keys: every xdist worker must collect the same names
    ids=["no-secret", "placeholder-secret", "placeholder-fernet", "no-fernet", "rotation"],
)
def test_production_refuses_placeholder_or_missing_secrets(
    secret: str | None, keys: str | None, complaint: str
) -> None:
    with pytest.raises(ValidationError, match=complaint):
        Settings(environment="production", secret_key=secret, encryption_keys=keys,
                 _env_file=None)  # type: ignore[call-arg]


def test_production_starts_with_real_secrets() -> None:
    s = Settings(environment="production", secret_key="s" * 40,
                 encryption_keys=SecretBox.generate_key(), _env_file=None)  # type: ignore[call-arg]
    assert s.effective_log_format == "json"


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOPSPLANE_DATABASE_URL", "postgres://u@h:5432/d")
    monkeypatch.setenv("HOPSPLANE_PORT", "9001")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.database_url == "postgresql+psycopg://u@h:5432/d"
    assert s.port == 9001


def test_database_url_must_be_postgres() -> None:
    with pytest.raises(ValueError, match="PostgreSQL URL"):
        normalise_database_url("mysql://u@h/d")


def test_secret_box_round_trip_and_rotation() -> None:
    old, new = SecretBox.generate_key(), SecretBox.generate_key()
    token = SecretBox([old]).encrypt("hopsworks-api-key")
    assert token.startswith(FERNET_PREFIX) and "hopsworks-api-key" not in token
    rotated_box = SecretBox([new, old])
    rotated = rotated_box.rotate(token)
    assert SecretBox([new]).decrypt(rotated) == "hopsworks-api-key"
    with pytest.raises(Invalid, match="cannot be decrypted"):
        SecretBox([new]).decrypt(token)


def test_bad_keys_say_what_to_do() -> None:
    with pytest.raises(Invalid, match="generate-key"):
        SecretBox(["not-a-key"])
    assert "redacted" in repr(SecretBox([SecretBox.generate_key()]))


def test_cookies_are_secure_everywhere_but_in_development_over_http() -> None:
    dev = Settings(_env_file=None, environment="development")  # type: ignore[call-arg]
    assert not dev.secure_cookies
    assert Settings(_env_file=None, environment="development",  # type: ignore[call-arg]
                    public_url="https://console.example").secure_cookies
    assert Settings(_env_file=None, environment="test",  # type: ignore[call-arg]
                    secret_key="s" * 40).secure_cookies


def test_the_first_secret_key_signs_and_all_are_kept() -> None:
    s = Settings(_env_file=None, environment="test",  # type: ignore[call-arg]
                 secret_key=f" {'n' * 40} , {'o' * 40} ,")
    assert s.effective_secret_keys == ["n" * 40, "o" * 40]
    assert s.effective_secret_key == "n" * 40
