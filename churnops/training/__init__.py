"""Training: features, preprocessing, model fitting, evaluation and the model registry."""
