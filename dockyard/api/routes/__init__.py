"""One module per API area: parse the request, call that area's backend,
shape the answer.  Handlers see only `dockyard.backend` and the HTTP layer."""
