"""Container logs: Docker's json-file driver on top of conmon's k8s-file log.

conmon writes `<ts> <stream> <F|P> <text>` records while the container
runs, whether or not the daemon is up.  A `LogPump` per running container
turns them into the json-file log Docker clients expect at `LogPath`
(`<id>-json.log`, rotated by max-size/max-file); `read_logs` serves
`docker logs` and `attach?logs=1` from it.  The API layer chooses framing.

- `service`: `LogService`, the pumps of running containers and reading
- `format`: parse/format helpers, json-file encoding, driver options
- `pump`:   `LogPump` (conversion, rotation, resume after a daemon restart)
- `reader`: `read_logs` (tail, since/until, timestamps, follow)
- `files`:  blocking file helpers (backward line scan, rotated files)
"""
