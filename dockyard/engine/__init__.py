"""The engine: Docker's operations on one machine, as services behind the backends.

- `engine`: the composition root (builds, wires, starts and stops services)
- `containers/`: the record store, create, lifecycle, exit monitor, restart
  policies, health checks, attach, views (inspect/ps), stats, top/update
- `exec/`: `docker exec` sessions
- `logs/`: the json-file log driver over conmon's log
- `fs/`: a container's filesystem: export, diff, cp, commit
- `host/`: host facts and settings, emulation, userns-remap, the reaper
- `system`, `images`, `container_backend`: the backend protocols' faces
- `events`: the event bus

Imports point down this list's dependencies only: no module here imports
one that imports it back.
"""
