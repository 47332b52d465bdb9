"""The one-off single-image check on the priority queue."""
