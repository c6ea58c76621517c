"""The gate in front of the MLflow model registry.

``mlflow server --app-name tiergate`` loads :func:`tiergate.integrations.mlflow.app.create_app`, which puts a hook in
front of the registry's write calls: a version is registered, aliased, tagged or moved to a stage only if the gate
allows releasing its weights at the tier the policy's ``targets.mlflow`` gives that call; once decided on, the
version's files cannot be changed through the artifact API.

Modules, one job each: ``routes`` (which calls, what they ask, what is refused whatever the policy), ``surface``
(every route of the server and its verdict: gated, read-only, passes or refused), ``copies`` (a copied version is
decided afresh), ``targets`` (the tier a call needs, by the core's rule), ``internals`` (every use of MLflow's
private server API: ``internals.registry`` and ``internals.artifacts``), ``cache`` (not re-hashing unchanged weights),
``holder`` (the loaded configuration, reloaded when its files change), ``tags`` (the decision shown on the version),
``gatekeeper`` (one call -> one decision), ``registry`` (the store guard: every registry write decided or serialised
at MLflow's registry store), ``lock`` (the registry lock the workers share through the backend store), ``artifacts``
(freezing the files of gated versions against artifact writes), ``hook`` (Flask and ASGI glue and the 403),
``startup`` (refusing to start on a broken configuration or an untested MLflow) and ``app`` (the plugin factory,
beside basic-auth if asked). Nothing here imports mlflow until the server is built, so ``gate --help`` stays fast.
"""
