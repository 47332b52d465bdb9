"""Business logic behind views, API and tasks: views stay thin over these."""
