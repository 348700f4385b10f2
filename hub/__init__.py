"""dozor hub."""
