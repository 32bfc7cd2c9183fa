"""Health rules: what is wrong on the fleet, how bad, since when, and what to do."""
