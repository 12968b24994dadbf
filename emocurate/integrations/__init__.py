"""Glue for the pipelines curators already run (datatrove; optional extras)."""
