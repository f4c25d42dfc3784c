//! The elector against etcd 3.4.23 in a single container: election, interplay with
//! a Go `etcdctl elect` candidate on the same key, and TLS with client certificates plus
//! authentication with a role limited to the election prefix.
//!
//! Electors run as processes on the host (the binary cargo built), beside in-process stand-in
//! nodes, and reach etcd through the container's port published on 127.0.0.1. Every case
//! records the nodes' mode histories and checks never-two-active with the simulation's
//! checker. Skipped with a loud message when no Docker engine answers, unless
//! `ELECTOR_REQUIRE_DOCKER=1`. Images: `make etcd-image`.

use anyhow::{Context, Result, ensure};
use elector_integration::containers::etcd::{ContainerTls, EtcdContainer};
use elector_integration::containers::replicas::{HostReplicas, ProfileBounds};
use elector_integration::containers::{DockerTest, etcd_image};
use elector_integration::etcd_process::TestPki;
use std::time::Duration;

const KEY: &str = "/iotex-docker";
/// Bound on `etcdctl` printing what it is expected to print.
const ETCDCTL_WITHIN: Duration = Duration::from_secs(10);

async fn begin(test: &str) -> Result<Option<DockerTest>> {
    let Some(docker) = DockerTest::begin(test).await else {
        return Ok(None);
    };
    docker
        .require_image(&etcd_image(), "make etcd-image")
        .await?;
    Ok(Some(docker))
}

/// Three electors on one etcd: exactly one node becomes active, not before the activation
/// delay, stays the only one, and `etcdctl elect -l` inside the container names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn election_on_a_single_etcd_container() -> Result<()> {
    let Some(docker) = begin("election_on_a_single_etcd_container").await? else {
        return Ok(());
    };
    let etcd = EtcdContainer::start(docker.docker(), None).await?;
    let profile = ProfileBounds::fast();
    let replicas =
        HostReplicas::start(KEY, &profile, &vec![vec![etcd.endpoint()]; 3], &[], &[]).await?;

    let leader = replicas
        .wait_single_active(None, profile.first_activation_bound())
        .await?;
    let activated = replicas
        .last_change(leader, true)
        .context("no activation")?;
    // No handover record exists yet: the first leader waits the whole activation delay.
    ensure!(
        activated >= profile.timing.activation_delay,
        "{} activated {:.2}s after start, before the activation delay",
        replicas.value(leader),
        activated.as_secs_f64()
    );
    replicas
        .assert_sole_active_for(leader, profile.ttl() * 2)
        .await?;

    let shown = etcd.elect_listen_value(KEY, ETCDCTL_WITHIN).await?;
    ensure!(
        shown == replicas.value(leader),
        "etcdctl elect -l shows {shown:?}, the active node is {}",
        replicas.value(leader)
    );
    let keys = etcd
        .etcdctl_ok(&["get", "--prefix", "--keys-only", &format!("{KEY}/")])
        .await?;
    ensure!(
        keys.lines().filter(|line| !line.is_empty()).count() == 3,
        "expected three candidate keys, etcdctl shows:\n{keys}"
    );
    replicas.check_never_two_active()?;
    eprintln!(
        "election: {} active {:.2}s after start, alone for {:.0}s; etcdctl elect -l agrees",
        replicas.value(leader),
        activated.as_secs_f64(),
        (profile.ttl() * 2).as_secs_f64()
    );
    Ok(())
}

/// A Go `etcdctl elect` candidate inside the etcd container leads first: no elector activates
/// its node, and `etcdctl elect -l` shows the Go candidate. After it resigns (Ctrl-C, SIGINT),
/// an elector leads, after the activation delay (etcdctl leaves no handover record), and
/// `etcdctl elect -l` shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_elect_candidate_is_respected() -> Result<()> {
    let Some(docker) = begin("etcdctl_elect_candidate_is_respected").await? else {
        return Ok(());
    };
    let etcd = EtcdContainer::start(docker.docker(), None).await?;
    let mut go = etcd.spawn_etcdctl(&["elect", KEY, "go-elector"]).await?;
    let go_key = go.next_line(ETCDCTL_WITHIN).await?;
    let go_value = go.next_line(ETCDCTL_WITHIN).await?;
    ensure!(
        go_key.starts_with(&format!("{KEY}/")) && go_value == "go-elector",
        "etcdctl elect printed {go_key:?} / {go_value:?}"
    );

    let profile = ProfileBounds::fast();
    let replicas =
        HostReplicas::start(KEY, &profile, &vec![vec![etcd.endpoint()]; 2], &[], &[]).await?;
    // Long enough for an elector that ignored the Go leader to have activated.
    replicas
        .assert_none_active_for(profile.timing.activation_delay + profile.ttl() * 2)
        .await?;
    let keys = etcd
        .etcdctl_ok(&["get", "--prefix", "--keys-only", &format!("{KEY}/")])
        .await?;
    ensure!(
        keys.lines().filter(|line| !line.is_empty()).count() == 3,
        "expected the Go candidate and two electors, etcdctl shows:\n{keys}"
    );
    let shown = etcd.elect_listen_value(KEY, ETCDCTL_WITHIN).await?;
    ensure!(
        shown == "go-elector",
        "etcdctl elect -l shows {shown:?} while the Go candidate leads"
    );

    let resigned = replicas.now();
    let code = go.interrupt(Duration::from_secs(10)).await?;
    ensure!(code == Some(0), "etcdctl elect exited with {code:?} on ^C");
    let leader = replicas
        .wait_single_active(None, profile.first_activation_bound())
        .await?;
    let activated = replicas
        .last_change(leader, true)
        .context("no activation")?;
    ensure!(
        activated >= resigned + profile.timing.activation_delay,
        "{} activated {:.2}s after the Go candidate resigned, before the activation delay",
        replicas.value(leader),
        (activated - resigned).as_secs_f64()
    );
    replicas
        .assert_sole_active_for(leader, profile.ttl())
        .await?;
    let shown = etcd.elect_listen_value(KEY, ETCDCTL_WITHIN).await?;
    ensure!(
        shown == replicas.value(leader),
        "etcdctl elect -l shows {shown:?}, the active node is {}",
        replicas.value(leader)
    );
    replicas.check_never_two_active()?;
    eprintln!(
        "interop: Go candidate respected; {} active {:.2}s after it resigned",
        replicas.value(leader),
        (activated - resigned).as_secs_f64()
    );
    Ok(())
}

/// etcd serving TLS only, requiring client certificates, with authentication on and a user
/// whose role may only read and write keys under the election key (`<key>/...` candidates,
/// `<key>.elector/...` handover keys). An elector with the right CA, certificate, user and
/// password leads; one with a wrong password and one with a certificate from another CA log
/// a clear error, never the password, and their nodes stay standby.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_auth_with_a_role_limited_to_the_election() -> Result<()> {
    let Some(docker) = begin("tls_and_auth_with_a_role_limited_to_the_election").await? else {
        return Ok(());
    };
    let (pki, stranger) = tokio::task::spawn_blocking(|| -> Result<(TestPki, TestPki)> {
        Ok((TestPki::generate()?, TestPki::generate()?))
    })
    .await??;
    let etcd = EtcdContainer::start(docker.docker(), Some(ContainerTls::from_pki(&pki)?)).await?;

    const ROOT: &str = "--user=root:root-secret";
    const PASSWORD: &str = "elector-secret-4f2a";
    for args in [
        &["user", "add", "root:root-secret"][..],
        &["user", "grant-role", "root", "root"],
        &["role", "add", "elector"],
        &[
            "role",
            "grant-permission",
            "elector",
            "--prefix=true",
            "readwrite",
            KEY,
        ],
        &["user", "add", &format!("elector:{PASSWORD}")],
        &["user", "grant-role", "elector", "elector"],
        &["auth", "enable"],
    ] {
        etcd.etcdctl_ok(args).await?;
    }
    // The role is limited: outside the election key, the user may do nothing.
    let as_elector = format!("--user=elector:{PASSWORD}");
    let outside = etcd
        .etcdctl(&[&as_elector, "put", "/not-the-election", "x"])
        .await?;
    ensure!(
        !outside.success() && outside.stderr.contains("permission denied"),
        "the elector user could write outside the election: {outside:?}"
    );
    etcd.etcdctl_ok(&[&as_elector, "get", "--prefix", KEY])
        .await?;

    let file = |path: &std::path::Path| path.display().to_string();
    // The CA that signed etcd's certificate, and a client certificate from `client`.
    let tls = |client: &TestPki| {
        vec![
            format!("--etcd-ca={}", file(&pki.ca)),
            format!("--etcd-cert={}", file(&client.client_cert)),
            format!("--etcd-key={}", file(&client.client_key)),
            "--etcd-user=elector".to_owned(),
        ]
    };
    let profile = ProfileBounds::fast();
    let replicas = HostReplicas::start(
        KEY,
        &profile,
        &vec![vec![etcd.endpoint()]; 3],
        // a: all right; b: wrong password; c: a client certificate etcd does not trust.
        &[tls(&pki), tls(&pki), tls(&stranger)],
        &[
            vec![("ELECTOR_ETCD_PASSWORD", PASSWORD)],
            vec![("ELECTOR_ETCD_PASSWORD", "not-the-password")],
            vec![("ELECTOR_ETCD_PASSWORD", PASSWORD)],
        ],
    )
    .await?;
    let leader = replicas
        .wait_single_active(None, profile.first_activation_bound())
        .await?;
    ensure!(leader == 0, "{} leads", replicas.value(leader));
    replicas
        .assert_sole_active_for(0, profile.ttl() * 2)
        .await?;

    let (wrong_password, wrong_cert) = (replicas.elector_log(1), replicas.elector_log(2));
    ensure!(
        wrong_password.contains("authentication failed for user elector")
            && wrong_password.contains("node held in standby"),
        "no clear error for a wrong password:\n{wrong_password}"
    );
    ensure!(
        wrong_cert.contains("unreachable")
            && wrong_cert.to_lowercase().contains("certificate")
            && wrong_cert.contains("node held in standby"),
        "no clear error for an untrusted client certificate:\n{wrong_cert}"
    );
    for (i, log) in [&replicas.elector_log(0), &wrong_password, &wrong_cert]
        .into_iter()
        .enumerate()
    {
        ensure!(
            !log.contains(PASSWORD) && !log.contains("not-the-password"),
            "elector {} logged a password",
            replicas.value(i)
        );
    }
    let shown = etcd
        .elect_listen_value_as(KEY, ROOT, Duration::from_secs(10))
        .await?;
    ensure!(shown == "a", "etcdctl elect -l shows {shown:?}");
    replicas.check_never_two_active()?;
    eprintln!(
        "security: TLS + auth elector leads; wrong password: {:?}; untrusted certificate: {:?}",
        first_line_with(&wrong_password, "authentication failed"),
        first_line_with(&wrong_cert, "unreachable")
    );
    Ok(())
}

fn first_line_with<'a>(log: &'a str, needle: &str) -> &'a str {
    log.lines()
        .find(|line| line.contains(needle))
        .unwrap_or_default()
        .trim()
}
