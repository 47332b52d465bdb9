"""The instant single-image check (priority queue)."""
