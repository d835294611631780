"""A Prometheus text exposition read back into its samples."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def metric_samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Each sample of a Prometheus text exposition by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }
