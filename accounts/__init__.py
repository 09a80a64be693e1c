"""Who the callers are: identity from Firebase tokens (and, later, profiles and account lifecycle)."""
