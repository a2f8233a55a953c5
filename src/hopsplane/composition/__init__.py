"""Composition roots: the code that wires settings, integrations and each domain's tasks into
a worker (and, with api/app.py, into an app). Above the domains, below the edges."""
