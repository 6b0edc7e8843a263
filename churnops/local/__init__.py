"""The embedded local mode: local services, the synthetic data generator, the demo."""
