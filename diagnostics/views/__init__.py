"""Web views, one module per area. Views stay thin over diagnostics.services."""
