"""The app as an outsider meets it: the local Auth0 issuer, a local Stripe, real tokens."""

from tests.identity.conftest import api  # noqa: F401 - real access tokens, a LogMailer
from tests.web.conftest import web  # noqa: F401 - the console/API fixture, shared
