"""Registry distribution: pull, push, login, and the registry API v2 client.

- `service`: `Distribution`, the registry side of the image store
- `pull`, `push`, `remote`: the operations; `layersink`: a blob as it arrives
- `client`: the HTTP client (`RepositoryClient` over a shared `Transport`)
- `hosts`, `proxies`, `auth`: where a name leads, proxies, credentials
- `manifest`, `platforms`, `metadata`, `errors`: the formats and rules (pure)
"""
