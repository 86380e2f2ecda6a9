"""What the engine knows and keeps about the machine it runs on.

- `probe`: host facts read once at start (cgroups, capabilities, rlimits...)
- `environment`: `HostEnv`, the facts plus the daemon's chosen settings and
  runtimes, which services take instead of the whole engine
- `emulation`: qemu-user-static registration for foreign-architecture images
- `userns`: userns-remap (id mappings, shifted layer copies)
- `reaper`: reaping the monitors the daemon started (it is a subreaper)
"""
