"""The console's pages, one module per audience: the customer's own account, the team,
organizations, auto top-up, webhooks, and platform admins. Each module has its ``router``; what they
share (rendering, notices, the savepoint around a form) is :mod:`hopsplane.web.rendering`."""

from hopsplane.web.pages import (
    account,
    admin,
    api_keys,
    auto_topup,
    organizations,
    team,
    webhooks,
)

ROUTERS = (account.router, team.router, organizations.router, auto_topup.router,
           webhooks.router, api_keys.router, admin.router)
