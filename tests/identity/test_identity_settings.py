import pytest
from pydantic import ValidationError

from hopsplane.config import Settings
from hopsplane.integrations.auth0 import build_identity
from tests.factories import TEST_ENCRYPTION_KEY


def make(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[arg-type]


def test_the_dev_issuer_refuses_to_run_next_to_auth0() -> None:
    with pytest.raises(ValidationError, match="cannot run together"):
        make(auth_dev_issuer=True, auth0_domain="t.auth0.com", auth0_audience="https://api/")


def test_the_dev_issuer_is_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="refused in production"):
        make(environment="production", auth_dev_issuer=True, secret_key="k" * 40,
             encryption_keys=TEST_ENCRYPTION_KEY)


def test_auth0_needs_domain_and_audience() -> None:
    with pytest.raises(ValidationError, match="go together"):
        make(auth0_domain="t.auth0.com")


def test_auth0_settings_build_the_https_issuer_and_jwks_url() -> None:
    s = make(auth0_domain="https://t.eu.auth0.com/", auth0_audience="https://api.hopsplane/",
             auth0_client_id="cid")
    assert s.auth0_domain == "t.eu.auth0.com"
    provider = build_identity(s)
    assert provider is not None and provider.dev_issuer is None
    assert provider.verifier.issuer == "https://t.eu.auth0.com/"
    assert provider.verifier.jwks.url == "https://t.eu.auth0.com/.well-known/jwks.json"
    assert provider.web is not None
    assert provider.web.authorize_url(redirect_uri="https://c/cb", state="s", verifier="v" * 43
                                      ).startswith("https://t.eu.auth0.com/authorize?")


def test_nothing_configured_means_no_identity() -> None:
    assert build_identity(make()) is None
