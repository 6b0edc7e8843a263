"""The embedded local mode: the local services (:mod:`churnops.local.localstack`), the synthetic data
generator (:mod:`churnops.local.datagen`), the producers' file formats it writes
(:mod:`churnops.local.rawformat`) and the simulated shifts that measure the drift check
(:mod:`churnops.local.driftsim`). The end-to-end demo is a command: :mod:`churnops.cli.demo`."""
