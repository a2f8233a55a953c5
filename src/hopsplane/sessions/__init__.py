"""Browser sessions, kept server-side so that signing out (and an admin's "sign out
everywhere") revokes them; the cookie carries only a signed random token."""
