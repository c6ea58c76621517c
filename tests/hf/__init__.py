# A package, so that its helpers import as `hf.conftest` / `hf.hub_standin` from other test folders.
