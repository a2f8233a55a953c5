"""What the API and the console share: the request's session and caller, role guards,
forms with CSRF, session cookies, pagination. Below api/ and web/, above the domains."""
