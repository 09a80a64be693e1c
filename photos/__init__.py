"""Photo services: what the API does with photos, above the repositories and the ML pipeline."""
