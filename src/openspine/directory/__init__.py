"""Spine Directory (SDS/ODS): organisations, users' role profiles and API applications."""
