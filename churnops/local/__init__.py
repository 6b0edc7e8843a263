"""The embedded local mode: the local services (:mod:`churnops.local.localstack`) and the synthetic data
generator (:mod:`churnops.local.datagen`). The end-to-end demo is a command: :mod:`churnops.cli.demo`."""
