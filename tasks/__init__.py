"""Campaign-level steps: stage bodies run by DVC, and the Prefect tasks the flows wire."""
