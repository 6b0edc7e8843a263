"""The model's home: what every part that loads or answers with the churn model shares.

- :mod:`churnops.model.registry`: the registry client (aliases, versions, their history) and the
  mapping of MLflow's errors to the registry's domain errors;
- :mod:`churnops.model.scoring`: the one model loader (:func:`~churnops.model.scoring.load_model`): a logged,
  registered or local model, error-mapped, for scoring (:class:`~churnops.model.scoring.ScoringModel`);
- :mod:`churnops.model.predict`: the predict contract: output names, the threshold, the probability of churn;
- :mod:`churnops.model.fastpath`: the compiled fast path of the logged Pipeline.

Serving, batch scoring, monitoring and training use it; it imports nothing of training's fitting
stack (features, evaluation, MLflow run logging), so the model server does not either.
"""
