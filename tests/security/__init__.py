"""Hardening: client addresses behind proxies, shared limits, admin two-factor,
API token storage, security headers, bad characters."""
