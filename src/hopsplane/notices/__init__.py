"""Account events and the notices they cause: one publish point, sent by the worker."""
