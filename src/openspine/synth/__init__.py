"""Deterministic synthetic population: patients, organisations, users and demo applications."""
