"""REST API for lab information systems (Django REST Framework)."""
