"""Simulated carrier data loggers: scenarios, thermal model, MQTT publishing."""
