"""The registry client's pure parts: credentials, challenges, manifests,
platforms, registry errors and endpoints (no network, no root)."""

from __future__ import annotations

import base64
import json

import pytest

from dockyard.errors import InvalidParameter, NotFound
from dockyard.images.distribution import manifest as mf
from dockyard.images.distribution.auth import (
    AuthConfig,
    decode_auth_header,
    parse_token_response,
    parse_www_authenticate,
)
from dockyard.images.distribution.errors import (
    RegistryAuthError,
    RegistryUnreachable,
    parse_error_body,
    pull_error,
    push_error,
)
from dockyard.images.distribution.hosts import RegistryHosts, validate_insecure, validate_mirror
from dockyard.images.distribution.platforms import (
    Platform,
    no_match_message,
    parse_platform,
    select_manifests,
)

D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64
D3 = "sha256:" + "c" * 64


def _b64url(obj: object, pad: bool = True) -> str:
    s = base64.urlsafe_b64encode(json.dumps(obj).encode()).decode()
    return s if pad else s.rstrip("=")


# -- credentials -----------------------------------------------------------------

def test_auth_header_forms():
    a = decode_auth_header(_b64url({"username": "u", "password": "p",
                                    "serveraddress": "r.example"}, pad=False))
    assert (a.username, a.password, a.server_address) == ("u", "p", "r.example")
    assert decode_auth_header(_b64url({"identitytoken": "rt"})).identity_token == "rt"
    assert decode_auth_header(_b64url({"registrytoken": "bt"})).registry_token == "bt"
    # the config file's legacy "auth" field
    legacy = base64.b64encode(b"user:pa:ss").decode()
    a = decode_auth_header(_b64url({"auth": legacy}))
    assert (a.username, a.password) == ("user", "pa:ss")
    # unreadable headers are no credentials, as dockerd ignores them
    for bad in ("", "%%%", base64.b64encode(b"[1,2]").decode(), _b64url("text")):
        assert decode_auth_header(bad).empty
    assert AuthConfig.from_json({"Username": "U", "Password": "P"}).username == "U"


def test_www_authenticate():
    chs = parse_www_authenticate([
        'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull"',
        'Basic realm="x \\"quoted\\""'])
    assert [c.scheme for c in chs] == ["bearer", "basic"]
    assert chs[0].params == {"realm": "https://auth.example/token", "service": "reg",
                             "scope": "repository:a/b:pull"}
    assert chs[1].params["realm"] == 'x "quoted"'
    # two challenges in one header, and junk dropped
    chs = parse_www_authenticate(['Basic realm="a", Bearer realm="b",error="insufficient_scope"',
                                  '=garbage', 'Bearer realm="unterminated'])
    assert [(c.scheme, c.params.get("realm")) for c in chs][:2] == [("basic", "a"),
                                                                    ("bearer", "b")]


def test_token_response():
    tok = parse_token_response(b'{"token": "t", "expires_in": 10}', now=100)
    assert tok.value == "t" and tok.expires == 160          # at least 60 s
    tok = parse_token_response(b'{"access_token": "a", "expires_in": 300, '
                               b'"refresh_token": "r"}', now=0)
    assert (tok.value, tok.expires, tok.refresh_token) == ("a", 300, "r")
    for bad in (b"[]", b'{"token": ""}', b'{"expires_in": 5}'):
        with pytest.raises(ValueError):
            parse_token_response(bad)


# -- manifests -------------------------------------------------------------------

def _manifest(**over: object) -> bytes:
    doc = {"schemaVersion": 2, "mediaType": mf.DOCKER_MANIFEST,
           "config": {"mediaType": mf.DOCKER_CONFIG, "size": 10, "digest": D1},
           "layers": [{"mediaType": mf.DOCKER_LAYER_GZIP, "size": 20, "digest": D2}]}
    doc.update(over)
    return json.dumps(doc).encode()


def test_manifest_kinds():
    m = mf.parse_manifest(_manifest(), mf.DOCKER_MANIFEST)
    assert isinstance(m, mf.ImageManifest)
    assert m.config.digest == D1 and [x.digest for x in m.layers] == [D2]
    # no Content-Type and no mediaType: the shape decides (OCI)
    body = json.dumps({"schemaVersion": 2, "config": {"size": 1, "digest": D1},
                       "layers": []}).encode()
    assert mf.parse_manifest(body).media_type == mf.OCI_MANIFEST
    idx = mf.parse_manifest(json.dumps({"schemaVersion": 2, "mediaType": mf.OCI_INDEX,
                                        "manifests": [{"digest": D3, "size": 5,
                                                       "platform": {"os": "linux",
                                                                    "architecture": "arm64"}}]
                                        }).encode(), mf.OCI_INDEX)
    assert isinstance(idx, mf.Index)
    assert mf.index_platforms(idx) == [{"os": "linux", "architecture": "arm64"}]


@pytest.mark.parametrize(("body", "ctype", "text"), [
    (b"<html>", "text/html", ("unsupported manifest media type and no default available: "
                             "text/html")),
    (b"{", mf.DOCKER_MANIFEST, "error unmarshalling content"),
    (b'{"schemaVersion": 1, "fsLayers": []}', "", "schema 1 support has been removed"),
    (b"{}", mf.SCHEMA1_SIGNED, "schema 1 support has been removed"),
    (_manifest(layers=[{"mediaType": mf.DOCKER_LAYER_GZIP, "size": 1, "digest": "sha256:12"}]),
     mf.DOCKER_MANIFEST, "invalid digest"),
    (_manifest(layers=[{"mediaType": mf.DOCKER_LAYER_GZIP, "size": -1, "digest": D2}]),
     mf.DOCKER_MANIFEST, "invalid size"),
    (_manifest(layers=[{"mediaType": "text/plain", "size": 1, "digest": D2}]),
     mf.DOCKER_MANIFEST, "unsupported media type text/plain"),
    (_manifest(config={"mediaType": "application/vnd.cncf.helm.config.v1+json", "size": 1,
                       "digest": D1}), mf.DOCKER_MANIFEST, "(helm chart)"),
    (_manifest(manifests=[]), mf.DOCKER_MANIFEST, 'should not have "manifests"'),
    (_manifest(), mf.OCI_MANIFEST, "mediaType in manifest should be"),
    (b"[1]", mf.DOCKER_MANIFEST, "not a JSON object"),
])
def test_bad_manifests(body, ctype, text):
    with pytest.raises(InvalidParameter) as e:
        mf.parse_manifest(body, ctype)
    assert text in e.value.message


def test_pushed_manifest_bytes():
    body = mf.schema2_manifest(mf.Descriptor(mf.DOCKER_CONFIG, D1, 10),
                               [mf.Descriptor(mf.DOCKER_LAYER_GZIP, D2, 20)])
    # Go's MarshalIndent with three spaces, fields in distribution's order
    assert body.decode().splitlines()[:4] == [
        "{", '   "schemaVersion": 2,',
        '   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",',
        '   "config": {']
    assert mf.parse_manifest(body, mf.DOCKER_MANIFEST).layers[0].size == 20


# -- platforms -------------------------------------------------------------------

def test_parse_platform():
    assert parse_platform("linux/arm64") == Platform("linux", "arm64", "")
    assert parse_platform("linux/aarch64") == Platform("linux", "arm64", "")
    assert parse_platform("linux/arm/v6") == Platform("linux", "arm", "v6")
    assert parse_platform("linux/x86_64") == Platform("linux", "amd64", "")
    assert parse_platform("arm64").architecture == "arm64"
    for bad, text in (("foobar", "unknown operating system or architecture"),
                      ("linux/*", "wildcards not yet supported"),
                      ("a/b/c/d", "cannot parse platform specifier"),
                      ("linux/a b", "invalid platform specifier")):
        with pytest.raises(InvalidParameter, match=text):
            parse_platform(bad)


def test_select_manifests_prefers_the_exact_variant():
    entries = [{"digest": D1, "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
               {"digest": D2, "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
               {"digest": D3, "platform": {"os": "linux", "architecture": "amd64"}}]
    assert [e["digest"] for e in select_manifests(entries, Platform("linux", "arm", "v7"))] == \
        [D2, D1]
    assert [e["digest"] for e in select_manifests(entries, Platform("linux", "arm", "v6"))] == \
        [D1]
    assert select_manifests(entries, Platform("linux", "arm64")) == []
    arm64 = [{"digest": D1, "platform": {"os": "linux", "architecture": "arm64",
                                         "variant": "v8"}}]
    assert select_manifests(arm64, parse_platform("linux/arm64")) == arm64
    assert no_match_message(Platform("linux", "amd64")) == \
        "no matching manifest for linux/amd64 in the manifest list entries"


# -- registry errors --------------------------------------------------------------

def test_error_bodies():
    e = parse_error_body(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest '
                              b'unknown","detail":{"Tag":"x"}}]}')
    assert e.code == "MANIFEST_UNKNOWN" and e.text == "manifest unknown: manifest unknown"
    # a Bearer challenge's error comes first (distribution's client)
    e = parse_error_body(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication '
                              b'required"}]}',
                         www_authenticate=['Bearer realm="r",error="insufficient_scope"'])
    assert e.code == "DENIED" and e.text == "denied: requested access to the resource is denied"
    assert parse_error_body(401, b"").text == "unauthorized: authentication required"
    assert "invalid character" in parse_error_body(500, b"<html>oops</html>").text
    assert parse_error_body(503, b"").text == "unexpected status code 503 Service Unavailable"


def test_pull_and_push_errors_in_dockerds_words():
    denied = parse_error_body(401, b'{"errors":[{"code":"DENIED","message":"requested access '
                                   b'to the resource is denied"}]}')
    err = pull_error(denied, "r.example/a", "r.example/a:1")
    assert isinstance(err, NotFound)
    assert err.message == ("pull access denied for r.example/a, repository does not exist or "
                           "may require 'docker login': denied: requested access to the "
                           "resource is denied")
    unknown = parse_error_body(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":'
                                    b'"manifest unknown"}]}')
    assert pull_error(unknown, "a", "a:1").message == \
        "manifest for a:1 not found: manifest unknown: manifest unknown"
    # refused credentials are a 500 as in dockerd (a 401 would make the CLI prompt)
    auth = pull_error(parse_error_body(401, b""), "a", "a:1")
    assert isinstance(auth, RegistryAuthError) and auth.status == 500
    assert isinstance(push_error(denied), RegistryAuthError)
    assert isinstance(pull_error(parse_error_body(502, b""), "a", "a:1"), RegistryUnreachable)


# -- endpoints ---------------------------------------------------------------------

def test_insecure_by_default_and_by_configuration():
    hosts = RegistryHosts(insecure=["10.1.0.0/16", "reg.example:5000"])
    for h in ("127.0.0.1:5000", "127.9.9.9", "localhost:1", "[::1]:5000", "10.1.2.3:443",
              "reg.example:5000"):
        assert hosts.is_insecure(h), h
    for h in ("reg.example", "reg.example:5001", "10.2.0.1", "192.0.2.1:5000"):
        assert not hosts.is_insecure(h), h
    assert [e.url for e in hosts.pull_endpoints("127.0.0.1:5000")] == [
        "https://127.0.0.1:5000", "http://127.0.0.1:5000"]
    assert [e.url for e in hosts.pull_endpoints("reg.example:5001")] == [
        "https://reg.example:5001"]


def test_mirrors_for_docker_hub_only():
    hosts = RegistryHosts(mirrors=["http://127.0.0.1:5000", "https://m.example/"])
    eps = hosts.pull_endpoints("docker.io")
    assert [(e.url, e.mirror) for e in eps] == [("http://127.0.0.1:5000", True),
                                                ("https://m.example", True),
                                                ("https://registry-1.docker.io", False)]
    assert [e.url for e in hosts.push_endpoints("docker.io")] == ["https://registry-1.docker.io"]
    assert [e.mirror for e in hosts.pull_endpoints("quay.example")] == [False]


def test_registry_option_texts():
    assert validate_mirror("https://m.example") == "https://m.example/"
    for bad, text in (("ftp://m", 'unsupported scheme "ftp"'),
                      ("https://m/path", "path, query, or fragment"),
                      ("https://:99999", "invalid mirror")):
        with pytest.raises(InvalidParameter, match=text):
            validate_mirror(bad)
    with pytest.raises(InvalidParameter, match="should not contain '://'"):
        validate_insecure("http://r")
    with pytest.raises(InvalidParameter, match="not a valid CIDR"):
        validate_insecure("10.0.0.0/99")


def test_proxies_as_go_chooses_them():
    from dockyard.images.distribution.proxies import Proxies, check_proxy_url

    p = Proxies.from_config({"https-proxy": "http://u:pw@proxy:3128"},
                            {"HTTP_PROXY": "http://plain:80", "no_proxy": ".corp, 10.0.0.0/8,"
                             "reg.example:5000, example.org"})
    assert p.for_url("https://registry-1.docker.io/v2/") == "http://u:pw@proxy:3128"
    assert p.for_url("http://reg.example/v2/") == "http://plain:80"
    for bypassed in ("https://127.0.0.1:5000/v2/", "https://localhost/v2/", "http://[::1]:5/",
                     "https://a.corp/v2/", "https://10.2.3.4/v2/", "https://reg.example:5000/",
                     "https://example.org/", "https://x.example.org/"):
        assert p.for_url(bypassed) is None, bypassed
    assert p.for_url("https://reg.example:5001/") is not None
    assert p.for_url("https://corp/") is not None              # ".corp": subdomains only
    assert Proxies(https="http://p", no_proxy="*").for_url("https://x/") is None
    assert p.shown() == {"HttpProxy": "http://plain:80",
                         "HttpsProxy": "http://xxxxx:xxxxx@proxy:3128",
                         "NoProxy": ".corp, 10.0.0.0/8,reg.example:5000, example.org"}
    assert check_proxy_url("proxy:3128") == "http://proxy:3128"
    with pytest.raises(InvalidParameter, match="only http:// and https://"):
        check_proxy_url("socks5://p:1080")
