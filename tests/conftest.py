"""Shared pytest configuration: a deterministic Hypothesis profile (CI must not flake)."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "nfvkit",
    derandomize=True,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("nfvkit")
