"""CrossGuard controls for the churnops platform."""
