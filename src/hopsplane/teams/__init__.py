"""Team invites and members: an owner invites by email, the invitee accepts, the owner
assigns projects and removes members."""
