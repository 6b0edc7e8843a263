"""Platform building blocks: settings, logging, object storage, secrets, alerts, build identity."""
