"""dozor firmware."""
