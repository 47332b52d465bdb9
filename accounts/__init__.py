"""Lab members, invitations and the invite-only sign-up."""
