"""Exec: extra processes in a running container (`docker exec`).

- `process`: one exec instance and the pure rules around it
- `service`: `ExecService`, create, start, resize and inspect of execs
"""
