"""Shared machinery of every Spine service: no service logic lives here."""
