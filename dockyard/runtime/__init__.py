"""OCI runtimes (runc/crun/...) and the conmon monitor.

The engine uses:
- `runtimes`: detect/probe/choose runtimes (`prepare_runtimes`), versions.
- `conmon`: `create_container` under conmon, `wait_for_exit`, `resize`,
  exit/OOM files.
- `commands`: runtime verbs after create (start, kill, delete, pause,
  resume, state, update, ps).
- `attach`: the attach-socket client (output chunks, stdin, stdin EOF).
- `exec`: `exec_process` sessions with exact exit codes.
- `logs`: `parse_k8s_log_line` for conmon's log file.
"""
