"""Registry credentials: docker login (POST /auth), X-Registry-Auth with a
password, an identity token or a registry token, htpasswd basic auth and
the bearer-token flow (a token server of the tests'), and TLS on 127.0.0.1;
all against distribution 2.8 started by the tests."""

from __future__ import annotations

import base64
import json
import urllib.parse
import urllib.request
import uuid

import docker
import pytest

from tests.integration.images.conftest import PASSWORD, USER
from tests.integration.images.registries import round_trip


def _repo() -> str:
    return f"t/{uuid.uuid4().hex[:10]}"


def _login(daemon, host: str, password: str):
    return daemon.docker("login", host, "-u", USER, "--password-stdin",
                         input=password.encode())


def _header(auth: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(auth).encode()).decode()


def test_basic_auth_login_push_pull(daemon, auth_registry):
    host = auth_registry.host
    res = _login(daemon, host, "wrong")
    assert res.returncode == 1
    assert (f"login attempt to http://{host}/v2/ failed with status: 401 Unauthorized"
            in res.stderr.decode())
    ref = f"{host}/{_repo()}:1"
    daemon.out("tag", "busybox", ref)
    res = daemon.docker("push", ref, input=b"")
    assert res.returncode == 1
    assert "no basic auth credentials" in res.stderr.decode()
    res = _login(daemon, host, PASSWORD)
    assert res.returncode == 0, res.stderr
    assert "Login Succeeded" in res.stdout.decode()
    try:
        out = daemon.out("push", ref)
        assert "1: digest: sha256:" in out
        daemon.out("rmi", ref)
        out = daemon.out("pull", ref)
        assert f"Status: Downloaded newer image for {ref}" in out
        assert daemon.out("run", "--rm", ref, "echo", "ok").strip() == "ok"
    finally:
        daemon.docker("logout", host)
    daemon.out("rmi", ref)
    # no credentials now: dockerd's error, a 500 (no login prompt from the CLI)
    res = daemon.docker("pull", ref, input=b"")
    assert res.returncode == 1
    err = res.stderr.decode()
    assert f'"http://{host}/v2/' in err and "no basic auth credentials" in err, err
    assert "Login prior to pull" not in res.stdout.decode()


def test_basic_auth_through_docker_py(client, auth_registry):
    ref = f"{auth_registry.host}/{_repo()}"
    client.images.get("busybox").tag(ref, "py")
    creds = {"username": USER, "password": PASSWORD}
    lines = list(client.images.push(ref, "py", auth_config=creds, stream=True, decode=True))
    assert any(line.get("aux", {}).get("Digest", "").startswith("sha256:") for line in lines)
    client.images.remove(f"{ref}:py")
    with pytest.raises(docker.errors.APIError) as e:
        client.images.pull(ref, "py", auth_config={"username": USER, "password": "nope"})
    assert e.value.response.status_code == 500
    assert "unauthorized: authentication required" in str(e.value)
    with pytest.raises(docker.errors.NotFound):
        client.images.get(f"{ref}:py")
    img = client.images.pull(ref, "py", auth_config=creds)
    assert f"{ref}:py" in img.tags
    assert client.login(USER, PASSWORD, registry=auth_registry.host,
                        reauth=True)["Status"] == "Login Succeeded"
    with pytest.raises(docker.errors.APIError) as e:
        client.login(USER, "nope", registry=auth_registry.host, reauth=True)
    assert e.value.response.status_code == 401
    client.images.remove(f"{ref}:py")


def test_push_credentials_in_the_body(client, auth_registry):
    """Old clients send the credentials as the push's body when there is no
    X-Registry-Auth header; a body that is no JSON object, or no body, is a 400."""
    ref = f"{auth_registry.host}/{_repo()}"
    client.images.get("busybox").tag(ref, "body")
    api = client.api
    resp = api._post(api._url("/images/{0}/push", ref), params={"tag": "body"},
                     data=json.dumps({"username": USER, "password": PASSWORD}),
                     headers={"Content-Type": "application/json"})
    assert resp.status_code == 200
    records = [json.loads(x) for x in resp.text.splitlines() if x.strip()]
    assert "error" not in records[-1], records[-1]
    assert records[-1]["aux"]["Tag"] == "body"
    resp = api._post(api._url("/images/{0}/push", ref), params={"tag": "body"},
                     data="[1, 2]", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert "bad parameters and missing X-Registry-Auth" in resp.json()["message"]
    # neither header nor body: moby's EOF
    resp = api._post(api._url("/images/{0}/push", ref), params={"tag": "body"})
    assert resp.status_code == 400
    assert resp.json()["message"] == ("bad parameters and missing X-Registry-Auth: invalid "
                                      "X-Registry-Auth header: EOF")
    client.images.remove(f"{ref}:body")


def test_bearer_token_flow(daemon, client, token_registry):
    host = token_registry.host
    ts = token_registry.token
    assert ts is not None
    res = _login(daemon, host, "wrong")
    assert res.returncode == 1
    assert (f'Get "http://{host}/v2/": unauthorized: incorrect username or password'
            in res.stderr.decode())
    res = _login(daemon, host, PASSWORD)
    assert res.returncode == 0, res.stderr
    private = f"{host}/{_repo()}:1"
    public = f"{host}/public/{uuid.uuid4().hex[:8]}:1"
    try:
        # the CLI keeps the refresh token the login returned as IdentityToken
        cfg = json.loads((daemon.data_root.parent / "docker-config" / "config.json")
                         .read_text())
        assert cfg["auths"][host].get("identitytoken")
        daemon.out("tag", "busybox", private)
        daemon.out("tag", "busybox", public)
        ts.requests.clear()
        out = daemon.out("push", private)
        assert "1: digest: sha256:" in out
        # the identity token went to the token server as a refresh token,
        # asking for the push scope
        posts = [r for r in ts.requests if r["method"] == "POST"]
        assert posts and any("push" in s for r in posts
                             for s in r["query"].get("scope", [""])[0].split(" "))
        daemon.out("push", public)
    finally:
        daemon.docker("logout", host)
    daemon.out("rmi", private, public)
    # anonymous: the public repository pulls, the private one is denied
    daemon.out("pull", public)
    res = daemon.docker("pull", private, input=b"")
    assert res.returncode == 1
    assert (f"pull access denied for {private[:-2]}, repository does not exist or may require "
            "'docker login': denied: requested access to the resource is denied"
            in res.stderr.decode())
    # the password in X-Registry-Auth (docker-py)
    img = client.images.pull(private, auth_config={"username": USER, "password": PASSWORD})
    assert private in img.tags
    daemon.out("rmi", private, public)


def _token(ts, scope: str, offline: bool = False) -> dict:
    q = {"service": ts.service, "scope": scope}
    if offline:
        q.update(offline_token="true", client_id="test")
    req = urllib.request.Request(f"{ts.realm}?{urllib.parse.urlencode(q)}", headers={
        "Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_registry_token_and_identity_token(daemon, client, token_registry):
    """X-Registry-Auth with `registrytoken` is sent to the registry as is (the
    token server is not asked); with `identitytoken` it is exchanged there."""
    ts = token_registry.token
    assert ts is not None
    repo = _repo()
    ref = f"{token_registry.host}/{repo}"
    client.images.get("busybox").tag(ref, "tok")
    token = _token(ts, f"repository:{repo}:pull,push")["token"]
    ts.requests.clear()
    api = client.api
    resp = api._post(api._url("/images/{0}/push", ref), params={"tag": "tok"},
                     headers={"X-Registry-Auth": _header({"registrytoken": token})})
    records = [json.loads(x) for x in resp.text.splitlines() if x.strip()]
    assert "aux" in records[-1], records[-1]
    assert ts.requests == []
    client.images.remove(f"{ref}:tok")
    # a token without the scope is refused by the registry
    other = _token(ts, "repository:t/other:pull")["token"]
    resp = api._post(api._url("/images/create"), params={"fromImage": ref, "tag": "tok"},
                     headers={"X-Registry-Auth": _header({"registrytoken": other})})
    assert resp.status_code == 404
    assert "pull access denied" in resp.json()["message"]
    # an identity token (a refresh token from an offline login)
    refresh = _token(ts, "", offline=True)["refresh_token"]
    ts.requests.clear()
    img = client.images.pull(ref, "tok", auth_config={"identitytoken": refresh})
    assert f"{ref}:tok" in img.tags
    assert any(r["method"] == "POST" and r["query"].get("refresh_token") == [refresh]
               for r in ts.requests)
    client.images.remove(f"{ref}:tok")


def test_tls_registry_on_loopback(daemon, tls_registry):
    """https on 127.0.0.1: insecure by default as in Docker (the certificate
    is not checked), so push and pull go over TLS without the test CA."""
    assert tls_registry.url.startswith("https://")
    round_trip(daemon, tls_registry.host, _repo())
