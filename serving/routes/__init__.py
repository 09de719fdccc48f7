"""The service's routes, one ``APIRouter`` per group, included by ``serving.app.create_app``.

``page`` (the clinician page and the offline API documentation), ``health`` (alive, ready),
``models`` (the champions in service, reload) and ``risk`` (scoring one patient or many, the
examples and the vocabulary). Each route receives the running service through the
``serving.state.AppState`` dependency. ``risk_fast`` puts a route for ``POST /v1/risk`` in front
of FastAPI's: a JSON body the request model accepts skips FastAPI's request handling; every
other body is replayed to FastAPI's route.
"""
