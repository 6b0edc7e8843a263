"""Delivery of the model server: render the kustomize overlays, apply them through the Kubernetes API,
smoke-test the predictor, and run the production canary (analyse, promote, roll back)."""
