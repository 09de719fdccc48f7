"""Models, small-sample validation, metrics, explanations, MLflow tracking and registry."""
