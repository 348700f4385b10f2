"""The operator and technician CLI (`dozor`), on top of the gateway, hub and simulators."""
