"""The worklist, per-image review, assignment, sign-out and amendment."""
