"""The gate service (``gate serve``): decisions, an attestation store and the transparency log over HTTP.

Modules, one job each:

- :mod:`.config` - the service's settings and loading them into a ready :class:`~.app.GateService` (or refusing to
  start with one clear line);
- :mod:`.tokens` - bearer tokens, stored as SHA-256 hashes and compared in constant time;
- :mod:`.bodies` - parsing and checking request bodies (what the service accepts, and the 400 reasons);
- :mod:`.targets` - publish targets (``huggingface:public``, ``mlflow:alias:prod``) to policy tiers;
- :mod:`.attestations` - finding the attestations the log holds for a model, incrementally;
- :mod:`.app` - the operations (submit, decide, log reads), free of HTTP;
- :mod:`.routes` - URL and method to operation, query parameters, responses;
- :mod:`.http` - the stdlib HTTP server: limits, authentication, errors as JSON, never a traceback;
- :mod:`.openapi` - the OpenAPI document served at ``/openapi.json``.

Only the standard library and the core dependencies are used, so the service runs wherever the CLI does.
"""
