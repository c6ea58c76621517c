"""Every use of MLflow's server internals, in this package and nowhere else.

The gate runs inside the MLflow server and needs what its handlers use: the stores, the request parser, the
proxied-artifact resolution and the source validators. None of it is public API (``mlflow.server.handlers``
functions with a leading underscore), so it is all here: after an MLflow upgrade, these are the modules to re-read
(checked against mlflow 3.17.2). :mod:`.registry` holds the registry's side (routes, requests, versions, tags, where a
version's files are); :mod:`.artifacts` the artifact store's (which calls write files, and where they write).
Everything of MLflow is imported inside the functions, so importing these modules is free.
"""
