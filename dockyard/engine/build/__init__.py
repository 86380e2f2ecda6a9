"""`docker build` in the engine: the build backend and its step engine.

- `service`: the `BuildBackend`, its cache index and prune
- `steps`: `StepEngine` implemented with containers and the image store
"""
