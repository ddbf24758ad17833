"""Hypothesis profile: deterministic, database-free, no deadlines (CI-safe)."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "netspec",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("netspec")
