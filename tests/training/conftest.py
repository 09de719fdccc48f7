"""Training fixtures: a fresh real MLflow SQLite store per test, cheaply.

Creating an MLflow SQLite store runs every schema migration (~5–10 s); the store is created
once per session and its file copied for each test, which gives every test its own real store.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def _store_template(tmp_path_factory) -> Path:
    import mlflow

    folder = tmp_path_factory.mktemp("mlflow-template")
    db = folder / "mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")
    client.search_experiments()  # creates the schema
    return db


@pytest.fixture
def tracking_uri(tmp_path, _store_template, monkeypatch) -> str:
    """``sqlite:///…/mlflow.db`` in this test's tmp_path (artifacts in ``mlartifacts`` beside)."""
    import mlflow

    store = tmp_path / "store"
    store.mkdir()
    shutil.copy(_store_template, store / "mlflow.db")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


@pytest.fixture
def client(tracking_uri):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
