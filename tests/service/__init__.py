# A package, so this directory's conftest.py is imported as `service.conftest` and does not replace the top-level
# `conftest` module that test files import helpers from (`from conftest import World, ...`).
