# A package, so that its helpers import as `service.conftest` from other test folders.
