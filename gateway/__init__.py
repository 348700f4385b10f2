"""dozor gateway."""
