//! The URLs and the key on the command line, checked with a real URL parser at start-up: a
//! wrong one is a one-line error naming the flag, never a retry loop.

/// Checks and normalizes every `--etcd` endpoint in place (see [`etcd_endpoint`]), and that
/// they all use one scheme.
pub(super) fn check_endpoints(endpoints: &mut [String]) -> Result<(), String> {
    for endpoint in endpoints.iter_mut() {
        *endpoint = etcd_endpoint(endpoint)?;
    }
    let https = endpoints
        .iter()
        .filter(|e| e.starts_with("https://"))
        .count();
    if https != 0 && https != endpoints.len() {
        return Err(format!(
            "--etcd: {} mixes http:// and https:// endpoints; use one scheme",
            endpoints.join(",")
        ));
    }
    Ok(())
}

/// One etcd endpoint, parsed with a URL parser and normalized to `scheme://host:port`.
///
/// Without `://` it is taken as `host:port` over plain HTTP, as Go's clientv3 takes it. Only
/// `http` and `https` are spoken; the host and the port must be given; a path, query,
/// fragment or credentials are refused (etcd's gRPC ignores paths, and a password belongs in
/// `ELECTOR_ETCD_PASSWORD` or `--etcd-password-file`, not in a URL that gets logged).
pub fn etcd_endpoint(raw: &str) -> Result<String, String> {
    let text = raw.trim();
    if text.is_empty() {
        return Err("--etcd: empty endpoint in the list".into());
    }
    let full = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    let bad = |why: &str| format!("--etcd: {raw:?} {why}");
    let url = url::Url::parse(&full).map_err(|e| bad(&format!("is not a valid URL ({e})")))?;
    match url.scheme() {
        "http" | "https" => {}
        "unix" | "unixs" => {
            return Err(bad(
                "is a Unix socket, which is not supported; use http://host:port",
            ));
        }
        other => {
            return Err(bad(&format!(
                "has the unknown scheme {other:?}; use http:// or https://"
            )));
        }
    }
    let host = match url.host_str() {
        Some(host) if !host.is_empty() => host,
        _ => return Err(bad("has no host; write it like http://127.0.0.1:2379")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "holds credentials; use --etcd-user with ELECTOR_ETCD_PASSWORD or \
             --etcd-password-file",
        ));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(bad(&format!(
            "has a path or query; an etcd endpoint is only scheme://host:port, like {}://{host}:2379",
            url.scheme()
        )));
    }
    // The parser forgets a port equal to the scheme's default: look at what was written.
    let authority = full
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""))
        .unwrap_or("");
    let explicit_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    let port = match (url.port_or_known_default(), explicit_port) {
        (Some(port), true) => port,
        _ => {
            return Err(bad(&format!(
                "has no port; etcd clients usually use 2379: {}://{host}:2379",
                url.scheme()
            )));
        }
    };
    Ok(format!("{}://{host}:{port}", url.scheme()))
}

/// A node URL (`--iotex-admin`, `--iotex-probe`): an `http://` or `https://` base URL with a
/// host, to which the elector appends `endpoint` (`/ha`, `/readiness`). A path prefix is
/// allowed (a proxy); the endpoint itself, a query or a fragment are refused.
pub fn node_url(flag: &str, raw: &str, endpoint: &str) -> Result<String, String> {
    let text = raw.trim();
    let bad = |why: String| format!("{flag}: {raw:?} {why}");
    if !text.contains("://") {
        return Err(bad(format!(
            "is not an http:// URL; write http://{}",
            text.trim_start_matches('/')
        )));
    }
    let url = url::Url::parse(text).map_err(|e| bad(format!("is not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "has the unknown scheme {:?}; use http://",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad(
            "has no host; write it like http://127.0.0.1:9009".into()
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(format!(
            "has a query or fragment; give the base URL, the elector appends {endpoint}"
        )));
    }
    // `/readiness` and `/health` are one handler on the node's probe port.
    let endpoints: &[&str] = match endpoint {
        "/readiness" => &["/readiness", "/health"],
        other => &[other],
    };
    let path = url.path().trim_end_matches('/');
    if let Some(found) = endpoints.iter().find(|e| path.ends_with(**e)) {
        let base = text.trim_end_matches('/');
        return Err(bad(format!(
            "ends with {found}; give the base URL, the elector appends {endpoint}: {}",
            &base[..base.len() - found.len()]
        )));
    }
    Ok(text.to_string())
}

/// The election key: an etcd key path, `/name` (the Go elector's default is
/// `/iotex-server`).
///
/// A key without its leading slash is refused, not normalized: etcd's `iotex-server/...` and
/// `/iotex-server/...` are two different elections, so replicas (or Go electors) that spell
/// it differently never see each other and each elects a leader of its own. Adding the slash
/// silently would split the election the same way whenever some replica, or a Go elector
/// still running during a migration, really uses the key without it; only the operator
/// knows which spelling the others use.
pub(super) fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.ends_with('/') {
        return Err(format!(
            "--key: {key:?} must be non-empty and not end with '/'"
        ));
    }
    if !key.starts_with('/') {
        return Err(format!(
            "--key: {key:?} does not start with '/': etcd keys {key}/... and /{key}/... are two \
             different elections, whose leaders never see each other. Write --key /{key} on \
             every replica (the usual form; the Go elector's default is /iotex-server); a Go \
             elector started with -key={key} campaigns in the other one (`etcdctl get --prefix \
             --keys-only {key}/` lists its candidates): stop it and force its node standby \
             before ours starts"
        ));
    }
    Ok(())
}
