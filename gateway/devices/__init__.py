"""Device drivers: one module shape for every device kind (see base.py), registered by kind."""
