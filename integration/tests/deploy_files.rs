//! The shipped files in `deploy/` and the install recipe of docs/operations.md, checked the way
//! an operator uses them:
//!
//! - `deploy/systemd/elector.env` sourced by bash with `set -a` (as the docs say) runs nothing,
//!   with every commented example uncommented, and every variable keeps its whole value;
//! - the install recipe (docs/operations.md and the unit's header, one and the same) run line
//!   by line, as root, in a private mount namespace over a copy of `/etc`: the user `elector`
//!   can read what the elector reads, others cannot, and `systemd-analyze verify` accepts the
//!   installed unit with its drop-in;
//! - the fast profile drop-in starts under its own watchdog, its `WatchdogSec=` and
//!   `TimeoutStopSec=` fit the room `elector check` prints (the shipped unit's do not), and its
//!   `ExecStopPost=` forces the node standby;
//! - the alert rules pass their `promtool` unit tests, the `PrometheusRule` holds the same
//!   rules, and the Grafana dashboard works from file provisioning;
//! - the shutdown bound is quoted as the core computes it, and every platform's stop timeout
//!   leaves room for a fence.
//! - the image runs the elector under `elector supervise`, and the restart bound the Compose
//!   and Kubernetes examples state holds under it with the default timing.
//!
//! Needs `promtool` and `systemd-analyze` (`make prereqs` installs them) and, for the running
//! parts, `cargo build -p elector` and etcd.
//!
//! One test binary per subject on purpose (each file under `tests/` is linked separately, which
//! costs CI minutes on 2 cores): every shipped file under `deploy/` is checked here, each by
//! its own test.

use elector_core::Timing;
use elector_integration::cluster::{Cluster, ClusterOptions, SETTLE};
use elector_integration::host::elector_binary;
use elector_integration::notify_socket::receive;
use elector_integration::timing_profile::TimingProfile;
use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn repo_file(path: &str) -> PathBuf {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    full.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_file(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Runs a command to its end; panics if it cannot be started.
fn run(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A tool the Makefile's `prereqs` installs: its absence is a broken set-up, not a skip.
fn require_tool(tool: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{tool} not found: `make prereqs` installs it (apt-get install --no-install-recommends \
         {package})"
    );
}

// ----- the environment file ---------------------------------------------------------------

/// `NAME='value'` with nothing after the closing quote and no quote inside: the one form that
/// systemd, Compose and a POSIX shell all read as the same literal value.
fn single_quoted_assignment(line: &str) -> Option<(String, String)> {
    let (name, rest) = line.split_once('=')?;
    let valid_name = name.starts_with("ELECTOR_")
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    let value = rest.strip_prefix('\'')?.strip_suffix('\'')?;
    (valid_name && !value.contains('\'')).then(|| (name.to_owned(), value.to_owned()))
}

/// The file with every commented-out assignment (`# ELECTOR_X=...`) made live.
fn uncomment_examples(file: &str) -> String {
    file.lines()
        .map(|line| {
            let bare = line.trim_start_matches('#').trim_start();
            let line =
                if line.starts_with('#') && bare.starts_with("ELECTOR_") && bare.contains('=') {
                    bare
                } else {
                    line
                };
            format!("{line}\n")
        })
        .collect()
}

/// How bash sources `file_text` with `set -a; . FILE; set +a`, as docs/operations.md says to.
/// A DEBUG trap (inherited by `.` under `set -T`) records every simple command bash is about
/// to execute from the file; with `run == false` it also skips each one (`extdebug`), so that
/// nothing from the file runs at all. PATH holds only fakes of the commands the examples
/// name, which record that they ran; any other command name is recorded as "not found".
struct Sourced {
    /// The file's simple commands, as bash saw them.
    trace: Vec<String>,
    /// Commands that ran: fakes, and names not found.
    ran: Vec<String>,
    /// The values of the names asked for (`<unset>` for none).
    values: BTreeMap<String, String>,
}

fn source_in_bash(file_text: &str, names: &[String], run_it: bool) -> Sourced {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let fakes = dir.path().join("bin");
    std::fs::create_dir(&fakes).expect("creating the fakes' directory");
    let log = dir.path().join("ran.log");
    for tool in [
        "sudo",
        "systemctl",
        "docker",
        "iptables",
        "logger",
        "page-oncall",
        "sh",
        "bash",
        "env",
        "curl",
        "wget",
    ] {
        let path = fakes.join(tool);
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho \"{tool} $*\" >> '{}'\n", log.display()),
        )
        .expect("writing a fake");
        let mut permissions = std::fs::metadata(&path).expect("a fake").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&path, permissions).expect("making a fake executable");
    }
    let trace = dir.path().join("trace.log");
    let env_file = dir.path().join("elector.env");
    std::fs::write(&env_file, file_text).expect("writing the environment file");
    let script = format!(
        r#"
on_debug() {{
  [[ ${{BASH_SOURCE[1]-}} == '{file}' ]] || return 0
  printf '%s\n' "$BASH_COMMAND" >> '{trace}'
  [[ $RUN_IT == yes ]]
}}
command_not_found_handle() {{ echo "not found: $*" >> '{log}'; return 127; }}
set -T
shopt -s extdebug
trap on_debug DEBUG
set -a
. '{file}'
set +a
trap - DEBUG
for name in {names}; do printf '%s=%s\0' "$name" "${{!name-<unset>}}"; done
"#,
        log = log.display(),
        trace = trace.display(),
        file = env_file.display(),
        names = names.join(" "),
    );
    let output = run(Command::new("/bin/bash")
        .args(["--noprofile", "--norc", "-c", &script])
        .env_clear()
        .env("PATH", &fakes)
        .env("RUN_IT", if run_it { "yes" } else { "no" }));
    let lines = |path: &Path| -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let values = String::from_utf8_lossy(&output.stdout)
        .split('\0')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    Sourced {
        trace: lines(&trace),
        ran: lines(&log),
        values,
    }
}

#[test]
fn env_file_sourced_by_a_shell_runs_nothing_and_keeps_every_value() {
    let shipped = read("deploy/systemd/elector.env");
    let live = uncomment_examples(&shipped);
    let mut expected = BTreeMap::new();
    let mut assignments = 0;
    let mut examples = 0;
    for line in live
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let (name, value) = single_quoted_assignment(line).unwrap_or_else(|| {
            panic!("elector.env: not NAME='value' (single quotes, none inside): {line:?}")
        });
        assignments += 1;
        if !shipped.lines().any(|l| l == line) {
            examples += 1;
        }
        // A later assignment wins, in the shell as in systemd.
        expected.insert(name, value);
    }
    assert!(examples >= 10, "only {examples} commented examples found");
    assert!(
        expected["ELECTOR_FENCE_CMD"].contains("$ELECTOR_FENCE_REASON"),
        "the last fence example should keep $ELECTOR_FENCE_REASON for the fence to expand"
    );
    let names: Vec<String> = expected.keys().cloned().collect();

    // First without executing anything: bash must see nothing but literal assignments.
    let dry = source_in_bash(&live, &names, false);
    let not_assignments: Vec<&String> = dry
        .trace
        .iter()
        .filter(|command| single_quoted_assignment(command).is_none())
        .collect();
    assert!(
        not_assignments.is_empty(),
        "sourcing elector.env would execute more than assignments: {not_assignments:#?}"
    );
    assert_eq!(dry.trace.len(), assignments, "{:#?}", dry.trace);
    assert!(dry.ran.is_empty(), "{:#?}", dry.ran);

    // Then for real, with the fakes on PATH.
    let sourced = source_in_bash(&live, &names, true);
    assert!(
        sourced.ran.is_empty(),
        "sourcing elector.env ran commands: {:#?}",
        sourced.ran
    );
    assert_eq!(
        sourced.values, expected,
        "the shell's values differ from the file's"
    );

    // The harness catches the file's old, unquoted form: seen without being run...
    let old = "ELECTOR_FENCE_CMD=sudo /usr/bin/systemctl kill --signal=SIGKILL iotex-node.service";
    let dry = source_in_bash(&format!("{old}\n"), &[], false);
    assert_eq!(dry.trace, [old]);
    assert!(single_quoted_assignment(old).is_none());
    assert!(dry.ran.is_empty(), "{:?}", dry.ran);
    // ...and, run with a command the fakes stand in for, recorded as run.
    let relative = "ELECTOR_FENCE_CMD=sudo systemctl kill --signal=SIGKILL iotex-node.service\n";
    let sourced = source_in_bash(relative, &["ELECTOR_FENCE_CMD".to_owned()], true);
    assert_eq!(
        sourced.ran,
        ["systemctl kill --signal=SIGKILL iotex-node.service"],
        "the harness missed the unquoted command"
    );
    assert_eq!(sourced.values["ELECTOR_FENCE_CMD"], "<unset>");
}

// ----- the install recipe -----------------------------------------------------------------

/// The recipe's lines in docs/operations.md: the `sh` block after the `install recipe` marker.
fn recipe_in_docs() -> Vec<String> {
    let docs = read("docs/operations.md");
    let at = docs
        .find("<!-- install recipe")
        .expect("docs/operations.md has no install recipe marker");
    let block = &docs[at..];
    let start = block.find("```sh\n").expect("the recipe's code block") + "```sh\n".len();
    let end = block[start..]
        .find("```")
        .expect("the end of the recipe's code block");
    block[start..start + end]
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The recipe's lines in the unit's header: `#   ` lines after `# Install`, up to a bare `#`.
fn recipe_in_unit() -> Vec<String> {
    let unit = read("deploy/systemd/elector.service");
    unit.lines()
        .skip_while(|l| !l.starts_with("# Install"))
        .skip(1)
        .skip_while(|l| !l.starts_with("#   "))
        .take_while(|l| l.starts_with("#   "))
        .map(|l| l["#   ".len()..].to_owned())
        .collect()
}

#[test]
fn install_recipe_is_one_and_creates_the_user_first() {
    let docs = recipe_in_docs();
    assert_eq!(
        docs,
        recipe_in_unit(),
        "docs/operations.md and the header of deploy/systemd/elector.service give different \
         install recipes"
    );
    let first_use = |needle: &str| {
        docs.iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("the recipe never mentions {needle:?}"))
    };
    let useradd = first_use("useradd");
    assert!(useradd < first_use("/etc/elector"));
    assert!(
        first_use("-o root -g elector -m 0750 /etc/elector")
            < first_use("/etc/elector/elector.env")
    );
}

/// Runs the recipe as root in a private mount namespace: `/etc` and `/usr/local/bin` are
/// copies, `systemctl` a fake; then checks what the unit's user can read.
#[test]
fn install_recipe_works_in_a_scratch_root() {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIPPED: the install recipe needs root (useradd, chown, mount namespace)");
        return;
    }
    require_tool("systemd-analyze", "systemd");
    let probe = run(Command::new("unshare").args(["--mount", "true"]));
    if !probe.status.success() {
        println!(
            "SKIPPED: no mount namespace here (unshare --mount: {})",
            text(&probe).trim()
        );
        return;
    }
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let s = scratch.path();
    let recipe = recipe_in_docs().join("\n") + "\n";
    let optional: String = recipe_in_docs()
        .iter()
        .filter_map(|l| l.strip_prefix("# install "))
        .map(|l| format!("install {l}\n"))
        .collect();
    assert_eq!(optional.lines().count(), 3, "{optional}");
    std::fs::write(s.join("recipe.sh"), &recipe).expect("writing the recipe");
    std::fs::write(s.join("optional.sh"), &optional).expect("writing the optional lines");

    let script = r#"
set -euo pipefail
S="$SCRATCH"
# A copy of /etc without any trace of an earlier install.
mkdir -p "$S/etc" "$S/usr-local-bin" "$S/fakes" "$S/work/bin"
cp -a /etc/. "$S/etc/"
for f in passwd group shadow gshadow; do
  [ -f "$S/etc/$f" ] && sed -i '/^elector:/d' "$S/etc/$f"
done
rm -rf "$S/etc/elector" "$S/etc/systemd/system/elector.service" "$S/etc/systemd/system/elector.service.d"
mount --bind "$S/etc" /etc
mount --bind "$S/usr-local-bin" /usr/local/bin

# The checkout the recipe runs in: bin/elector from `make build`, deploy/, the operator's
# secrets; systemctl (no systemd here) records what it was asked.
ln -s "$ELECTOR_BIN" "$S/work/bin/elector"
ln -s "$REPO/deploy" "$S/work/deploy"
echo 'not-a-real-password' > "$S/work/etcd-password"
for f in etcd-ca.pem etcd-client.pem etcd-client-key.pem; do echo "not a real $f" > "$S/work/$f"; done
printf '#!/bin/sh\necho "systemctl $*" >> "%s/systemctl.log"\n' "$S" > "$S/fakes/systemctl"
chmod 0755 "$S/fakes/systemctl"
export PATH="$S/fakes:$PATH"

cd "$S/work"
echo "== the recipe, literally"
bash -euxo pipefail "$S/recipe.sh"
echo "== its optional lines"
bash -euxo pipefail "$S/optional.sh"

echo "== checks"
fail() { echo "FAILED: $*"; exit 1; }
getent passwd elector >/dev/null || fail "no user elector"
getent group elector >/dev/null || fail "no group elector"
[ "$(id -gn elector)" = elector ] || fail "elector's primary group is $(id -gn elector)"
mode() { stat -c '%U:%G %a' "$1"; }
[ "$(mode /etc/elector)" = "root:elector 750" ] || fail "/etc/elector is $(mode /etc/elector)"
for f in elector.env etcd-password etcd-ca.pem etcd-client.pem etcd-client-key.pem; do
  [ "$(mode /etc/elector/$f)" = "root:elector 640" ] || fail "/etc/elector/$f is $(mode /etc/elector/$f)"
  setpriv --reuid elector --regid elector --init-groups test -r "/etc/elector/$f" \
    || fail "the user elector cannot read /etc/elector/$f"
  if setpriv --reuid nobody --regid nogroup --clear-groups test -r "/etc/elector/$f"; then
    fail "anyone can read /etc/elector/$f"
  fi
done
[ "$(mode /usr/local/bin/elector)" = "root:root 755" ] || fail "/usr/local/bin/elector is $(mode /usr/local/bin/elector)"
[ "$(mode /etc/systemd/system/elector.service)" = "root:root 644" ] || fail "the unit is $(mode /etc/systemd/system/elector.service)"
[ -f /etc/systemd/system/elector.service.d/fast-profile.conf ] || fail "no drop-in"
grep -qx 'systemctl daemon-reload' "$S/systemctl.log" || fail "no daemon-reload: $(cat "$S/systemctl.log")"
grep -qx 'systemctl enable --now elector' "$S/systemctl.log" || fail "no enable --now: $(cat "$S/systemctl.log")"

# The elector, as the unit's user, reads the password and TLS files (it then fails to reach
# the etcd that is not there); as anyone else it is refused.
as_user() {
  setpriv "$@" env -i /usr/local/bin/elector status --etcd https://127.0.0.1:9 \
    --etcd-ca /etc/elector/etcd-ca.pem --etcd-cert /etc/elector/etcd-client.pem \
    --etcd-key /etc/elector/etcd-client-key.pem --etcd-user elector \
    --etcd-password-file /etc/elector/etcd-password 2>&1 || true
}
said=$(as_user --reuid elector --regid elector --init-groups)
case "$said" in *"ermission denied"*) fail "as elector: $said";; esac
said=$(as_user --reuid nobody --regid nogroup --clear-groups)
case "$said" in *"ermission denied"*) ;; *) fail "as nobody, no permission error: $said";; esac

# systemd's own check of the unit as installed, with its drop-in.
verify=$(systemd-analyze verify /etc/systemd/system/elector.service 2>&1) \
  || fail "systemd-analyze verify: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify: $verify"
echo "== recipe OK"
"#;
    let output = run(Command::new("unshare")
        .args(["--mount", "--propagation", "private", "bash", "-c", script])
        .env("SCRATCH", s)
        .env("REPO", repo_file(""))
        .env("ELECTOR_BIN", elector_binary().expect("the elector binary")));
    let said = text(&output);
    println!("{said}");
    assert!(
        output.status.success() && said.contains("== recipe OK"),
        "the install recipe failed:\n{said}"
    );
}

// ----- the shutdown bound and the platforms' stop timeouts ----------------------------------

/// `key=value` settings of a unit file's `[Service]` section, in order.
fn service_settings(path: &str) -> Vec<(String, String)> {
    let mut section = String::new();
    let mut settings = Vec::new();
    for line in read(path).lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line.to_owned();
        } else if section == "[Service]"
            && let Some((key, value)) = line.split_once('=')
        {
            settings.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    settings
}

/// The effective value of a setting (the last one; an empty assignment resets a list).
fn effective(settings: &[(String, String)], name: &str) -> Option<String> {
    settings
        .iter()
        .rev()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.clone())
}

fn seconds(d: Duration) -> String {
    let s = format!("{:.2}", d.as_secs_f64());
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s} s")
}

#[test]
fn shutdown_bound_is_quoted_as_computed_and_stop_timeouts_leave_room_for_a_fence() {
    let bound = Timing::default().shutdown_grace();
    let fast = Timing::fast_profile().shutdown_grace();
    assert_eq!(seconds(bound), "8.9 s");
    assert_eq!(seconds(fast), "6.45 s");
    for path in [
        "README.md",
        "docs/operations.md",
        "deploy/systemd/elector.service",
        "deploy/kubernetes/statefulset.yaml",
        "deploy/docker-compose.yml",
    ] {
        let text = read(path);
        assert!(
            text.contains(&seconds(bound)),
            "{path} does not quote {}",
            seconds(bound)
        );
        assert!(!text.contains("8.3 s"), "{path} still says 8.3 s");
    }
    for path in [
        "docs/operations.md",
        "deploy/systemd/elector-fast-profile.conf",
    ] {
        assert!(
            read(path).contains(&seconds(fast)),
            "{path} lacks {}",
            seconds(fast)
        );
    }

    // Room for the clean stop plus one fence (--fence-timeout, 10 s by default) at least,
    // where nothing asks for more time while the elector works: Kubernetes and compose. The
    // systemd unit's TimeoutStopSec= is short instead (stop_within_restart_bound; the elector
    // asks for more time while it works: ops_systemd.rs checks both).
    let needed = bound + Duration::from_secs(10);
    let find = yaml_value;
    let grace: u64 = find(
        "deploy/kubernetes/statefulset.yaml",
        "terminationGracePeriodSeconds:",
    )
    .parse()
    .expect("seconds");
    assert!(Duration::from_secs(grace) >= needed);
    let compose = find("deploy/docker-compose.yml", "stop_grace_period:");
    let compose = humantime::parse_duration(&compose).expect("stop_grace_period");
    assert!(compose >= needed, "stop_grace_period {compose:?}");
}

// ----- the fast profile under systemd ------------------------------------------------------

/// The environment file's variables as systemd gives them (quotes removed).
fn env_file_vars() -> Vec<(String, String)> {
    read("deploy/systemd/elector.env")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| single_quoted_assignment(l).unwrap_or_else(|| panic!("elector.env: {l:?}")))
        .collect()
}

fn watchdog_usec(setting: &str) -> String {
    let period = humantime::parse_duration(setting).expect("a WatchdogSec= duration");
    period.as_micros().to_string()
}

fn value_after(args: &[String], flag: &str) -> String {
    let at = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("no {flag} in {args:?}"));
    args[at + 1].clone()
}
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The drop-in's `ExecStart=` flags are the fast profile; its `WatchdogSec=` and
/// `TimeoutStopSec=` fit the room `elector check` prints for the profile's restart bound, the
/// shipped unit's do not; with the drop-in's `WatchdogSec=` the elector starts, leads and
/// pings every half period; the drop-in's `ExecStopPost=` forces the node standby.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_profile_drop_in_starts_under_its_watchdog() {
    const DROP_IN: &str = "deploy/systemd/elector-fast-profile.conf";
    let unit = service_settings("deploy/systemd/elector.service");
    let mut settings = unit.clone();
    settings.extend(service_settings(DROP_IN));
    let exec_start = effective(&settings, "ExecStart").expect("an ExecStart=");
    let mut words = exec_start.split_whitespace().map(str::to_owned);
    assert_eq!(words.next().as_deref(), Some("/usr/local/bin/elector"));
    let flags: Vec<String> = words.collect();
    let line = std::iter::once("elector".to_owned()).chain(flags.iter().cloned());
    let elector::cli::Parsed::Run(cli) = elector::cli::parse(line) else {
        panic!("the drop-in's flags do not parse: {flags:?}");
    };
    assert_eq!(
        cli.run.timing().expect("a valid timing"),
        TimingProfile::Fast.timing(),
        "the drop-in's flags are not the fast profile: {flags:?}"
    );
    let stop_post = effective(&settings, "ExecStopPost").expect("an ExecStopPost=");
    assert!(
        stop_post.contains("--node-timeout=150ms"),
        "ExecStopPost= must use the profile's node timeout: {stop_post}"
    );

    let mut cluster = Cluster::start_with(ClusterOptions {
        nodes: 1,
        ..ClusterOptions::default()
    })
    .await;
    cluster.kill_elector(0);
    let cluster_args = cluster.elector_args(0);
    // systemd's environment: the shipped file, pointed at this cluster.
    let mut env = env_file_vars();
    for (name, flag) in [
        ("ELECTOR_ETCD", "--etcd"),
        ("ELECTOR_IOTEX_ADMIN", "--iotex-admin"),
        ("ELECTOR_IOTEX_PROBE", "--iotex-probe"),
        ("ELECTOR_KEY", "--key"),
        ("ELECTOR_VALUE", "--value"),
        ("ELECTOR_STATUS_ADDR", "--status-addr"),
    ] {
        env.retain(|(n, _)| n != name);
        env.push((name.to_owned(), value_after(&cluster_args, flag)));
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("binding the notify socket");
    let spawn = |args: &[String], watchdog: &str, stderr: Stdio| {
        Command::new(elector_binary().expect("the elector binary"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().map(|(n, v)| (n.as_str(), v.as_str())))
            // What systemd's StateDirectory= gives the unit: a directory of its own.
            .env(
                "STATE_DIRECTORY",
                elector_integration::host::private_state_dir(),
            )
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", watchdog_usec(watchdog))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("starting the elector")
    };

    // The shipped unit's watchdog alone fits the profile's 2 s restart bound
    // (watchdog_within_restart_bound: the elector would start under it), but a hang just
    // before a stop is cut only by TimeoutStopSec=, and the unit's WatchdogSec= +
    // TimeoutStopSec= do not fit (stop_within_restart_bound), which the elector cannot see:
    // `elector check` says so and prints the room, which the drop-in's pair fits.
    let output = tokio::task::block_in_place(|| {
        run(Command::new(elector_binary().expect("the elector binary"))
            .arg("check")
            .args(&flags)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().map(|(n, v)| (n.as_str(), v.as_str())))
            .env(
                "STATE_DIRECTORY",
                elector_integration::host::private_state_dir(),
            ))
    });
    let checked = text(&output);
    let line = checked
        .lines()
        .find(|l| l.contains("under systemd: WatchdogSec= + TimeoutStopSec= at most"))
        .unwrap_or_else(|| panic!("elector check prints no room under systemd: {checked}"));
    assert!(
        line.contains("do NOT fit"),
        "the shipped unit's watchdog and stop timeout fit the profile: the drop-in would not be \
         needed: {line}"
    );
    let room = line
        .split("at most ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(|room| humantime::parse_duration(room).expect("the room"))
        .unwrap_or_else(|| panic!("no room in {line}"));
    let pair = |settings: &[(String, String)]| {
        ["WatchdogSec", "TimeoutStopSec"]
            .map(|name| {
                let value = effective(settings, name).unwrap_or_else(|| panic!("no {name}="));
                humantime::parse_duration(&value).expect("a duration")
            })
            .into_iter()
            .sum::<Duration>()
    };
    assert!(pair(&unit) > room, "{line}");
    assert!(
        pair(&settings) <= room,
        "the drop-in's WatchdogSec= + TimeoutStopSec= do not fit: {line}"
    );

    // The drop-in's watchdog: it starts, leads, and pings.
    let watchdog = effective(&settings, "WatchdogSec").expect("the drop-in's WatchdogSec=");
    let period = humantime::parse_duration(&watchdog).expect("WatchdogSec=");
    let mut elector = Killed(spawn(&flags, &watchdog, Stdio::null()));
    let received = tokio::task::block_in_place(|| {
        receive(&socket, SETTLE, |got| {
            got.iter()
                .position(|(_, m)| m.contains("STATUS=active"))
                .is_some_and(|at| got[at..].iter().filter(|(_, m)| m == "WATCHDOG=1").count() >= 8)
        })
    });
    let messages: Vec<&str> = received.iter().map(|(_, m)| m.as_str()).collect();
    assert!(
        elector.0.try_wait().expect("waiting").is_none(),
        "the elector exited under WatchdogSec={watchdog}: {messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("READY=1")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("STATUS=active")),
        "{messages:?}"
    );
    let pings: Vec<Instant> = received
        .iter()
        .filter(|(_, m)| m == "WATCHDOG=1")
        .map(|(at, _)| *at)
        .collect();
    assert!(pings.len() >= 8, "{messages:?}");
    for pair in pings.windows(2) {
        // Every half period; a loaded machine may delay one, never by the whole period.
        assert!(
            pair[1] - pair[0] < period,
            "ping gap {:?}",
            pair[1] - pair[0]
        );
    }
    assert!(
        cluster.node(0).state().active,
        "the leader's node is not active"
    );

    // A crash: the drop-in's ExecStopPost= forces the node standby.
    let _ = elector.0.kill();
    let _ = elector.0.wait();
    let mut stop_post_words = stop_post.split_whitespace();
    assert_eq!(stop_post_words.next(), Some("/usr/local/bin/elector"));
    let stop_post_args: Vec<&str> = stop_post_words.collect();
    let output = tokio::task::block_in_place(|| {
        run(Command::new(elector_binary().expect("the elector binary"))
            .args(&stop_post_args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env(
                "STATE_DIRECTORY",
                elector_integration::host::private_state_dir(),
            )
            .envs(env.iter().map(|(n, v)| (n.as_str(), v.as_str()))))
    });
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(!cluster.node(0).state().active);
}

// ----- what the platform examples must say --------------------------------------------------

/// The examples carry what operators otherwise learn the hard way: a PodDisruptionBudget, the
/// stranded-namespace warning of `network_mode: service:<node>`, and next to each fence
/// example the capability the unit drops.
#[test]
fn platform_examples_warn_where_operators_get_hurt() {
    let statefulset = read("deploy/kubernetes/statefulset.yaml");
    let budget = statefulset
        .split("\n---\n")
        .find(|doc| doc.contains("\nkind: PodDisruptionBudget\n"))
        .expect("deploy/kubernetes/statefulset.yaml has no PodDisruptionBudget");
    for line in [
        "apiVersion: policy/v1",
        "  maxUnavailable: 1",
        "      app: iotex-delegate",
    ] {
        assert!(budget.lines().any(|l| l == line), "no {line:?} in {budget}");
    }

    let compose = read("deploy/docker-compose.yml");
    assert!(compose.contains("network_mode: \"service:node-a\""));
    for needle in [
        "WARNING, `network_mode",
        "NEW namespace",
        "Restart the elector after its node",
    ] {
        assert!(compose.contains(needle), "compose example lacks {needle:?}");
    }
    let docs = read("docs/operations.md");
    assert!(docs.contains("**A restarted node container strands its elector.**"));

    // In the environment file, each fence example is preceded by what it needs.
    let env = read("deploy/systemd/elector.env");
    let lines: Vec<&str> = env.lines().collect();
    for (example, needs) in [
        ("# ELECTOR_FENCE_CMD='sudo ", "NoNewPrivileges=no"),
        (
            "# ELECTOR_FENCE_CMD='docker kill",
            "SupplementaryGroups=docker",
        ),
        ("# ELECTOR_FENCE_CMD='iptables", "CAP_NET_ADMIN"),
    ] {
        let at = lines
            .iter()
            .position(|l| l.starts_with(example))
            .unwrap_or_else(|| panic!("elector.env has no {example:?}"));
        let before = lines[at.saturating_sub(3)..at].join("\n");
        assert!(
            before.contains(needs),
            "{example:?} does not say it needs {needs}"
        );
    }
    // The unit and the docs' fencing section say the same.
    let unit = read("deploy/systemd/elector.service");
    let fencing = &docs[docs.find("\n## Fencing").expect("a Fencing section")..];
    for needs in [
        "NoNewPrivileges=no",
        "SupplementaryGroups=docker",
        "CAP_NET_ADMIN",
    ] {
        assert!(unit.contains(needs), "the unit does not mention {needs}");
        assert!(
            fencing.contains(needs),
            "docs' Fencing does not mention {needs}"
        );
    }
}

// ----- alert rules -------------------------------------------------------------------------

#[test]
fn alert_rules_pass_their_unit_tests() {
    require_tool("promtool", "prometheus");
    let check = run(Command::new("promtool")
        .args(["check", "rules"])
        .arg(repo_file("deploy/prometheus/alerts.yml")));
    assert!(check.status.success(), "{}", text(&check));
    let test = run(Command::new("promtool")
        .args(["test", "rules", "alerts_test.yml"])
        .current_dir(repo_file("deploy/prometheus")));
    assert!(test.status.success(), "{}", text(&test));
    let rules = read("deploy/prometheus/alerts.yml");
    for metric in [
        "elector_node_active",
        "elector_role{role=\"active\"}",
        "elector_fence_actions_total",
        "elector_fence_results_total{result=\"failure\"}",
        "elector_stuck",
        "elector_node_lost",
        "elector_etcd_connected",
    ] {
        assert!(rules.contains(metric), "no rule on {metric}");
    }
}

/// `spec:` of the PrometheusRule is alerts.yml from `groups:` on, indented by two spaces.
#[test]
fn prometheus_rule_holds_the_same_rules() {
    let rules = read("deploy/prometheus/alerts.yml");
    let groups = &rules[rules.find("\ngroups:").expect("groups: in alerts.yml") + 1..];
    let resource = read("deploy/kubernetes/prometheusrule.yaml");
    assert!(resource.contains("\nkind: PrometheusRule\n"));
    let spec = &resource[resource
        .find("\nspec:\n")
        .expect("spec: in the PrometheusRule")
        + 7..];
    let unindented: String = spec
        .lines()
        .map(|l| l.strip_prefix("  ").unwrap_or(l).to_owned() + "\n")
        .collect();
    assert_eq!(
        unindented, groups,
        "deploy/kubernetes/prometheusrule.yaml differs from deploy/prometheus/alerts.yml; \
         regenerate its spec as its header says"
    );
}

// ----- the Grafana dashboard ---------------------------------------------------------------

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read("deploy/grafana/elector-dashboard.json")).expect("dashboard JSON")
}

fn targets(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| {
            (
                t["expr"].as_str().expect("expr").to_owned(),
                t["legendFormat"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// File provisioning has no import step to fill `${DS_...}` inputs: the data source must be a
/// template variable. Replicas are named by `value` (else `pod`, else `instance`), and every
/// query is valid PromQL.
#[test]
fn dashboard_works_from_file_provisioning_and_names_replicas_by_value() {
    require_tool("promtool", "prometheus");
    let text_form = read("deploy/grafana/elector-dashboard.json");
    assert!(
        !text_form.contains("${DS_") && !text_form.contains("__inputs"),
        "import-only data source inputs"
    );
    let board = dashboard();
    let variables = board["templating"]["list"].as_array().expect("variables");
    assert!(
        variables.iter().any(|v| v["type"] == "datasource"
            && v["name"] == "datasource"
            && v["query"] == "prometheus"),
        "no Prometheus data source variable"
    );
    fn data_sources(value: &serde_json::Value, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, inner) in map {
                    if key == "datasource" {
                        found.push(inner["uid"].as_str().unwrap_or("?").to_owned());
                    } else {
                        data_sources(inner, found);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| data_sources(i, found)),
            _ => {}
        }
    }
    let mut uids = Vec::new();
    data_sources(&board, &mut uids);
    assert!(uids.len() >= 10);
    assert!(uids.iter().all(|u| u == "${datasource}"), "{uids:?}");

    let targets = targets(&board);
    let per_replica: Vec<&(String, String)> = targets
        .iter()
        .filter(|(_, legend)| legend.contains("{{"))
        .collect();
    assert!(per_replica.len() >= 8);
    for (expr, legend) in &per_replica {
        assert!(!legend.contains("{{instance}}"), "{legend}");
        assert!(
            legend.contains("{{replica}}") && expr.contains("\"replica\""),
            "a per-replica series not named by replica: {legend} <- {expr}"
        );
    }

    // Every query as a recording rule (Grafana's variables filled in): valid PromQL. One of
    // them evaluated: replica = value, else pod, else instance.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let rules: Vec<serde_json::Value> = targets
        .iter()
        .enumerate()
        .map(|(i, (expr, _))| {
            let expr = expr
                .replace("$__rate_interval", "1m")
                .replace("$job", ".*")
                .replace("$instance", ".*");
            serde_json::json!({"record": format!("dashboard:query{i}"), "expr": expr})
        })
        .collect();
    let node_mode = targets
        .iter()
        .position(|(expr, legend)| {
            expr.contains("label_replace(elector_node_active{") && legend.contains("{{replica}}")
        })
        .expect("the node mode panel");
    let rules_file = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    std::fs::write(dir.path().join("dashboard.yml"), rules_file.to_string()).expect("writing");
    let check = run(Command::new("promtool")
        .args(["check", "rules", "dashboard.yml"])
        .current_dir(dir.path()));
    assert!(check.status.success(), "{}", text(&check));
    let series = |labels: &str| format!("elector_node_active{{job=\"d\",{labels}}}");
    let expected = |labels: &str, replica: &str| {
        serde_json::json!({
            "labels": format!("dashboard:query{node_mode}{{job=\"d\",{labels},replica=\"{replica}\"}}"),
            "value": 1,
        })
    };
    let test = serde_json::json!({
        "rule_files": ["dashboard.yml"],
        "evaluation_interval": "15s",
        "tests": [{
            "interval": "15s",
            "input_series": [
                {"series": series("instance=\"h1:9901\",value=\"replica-a\""), "values": "1x4"},
                {"series": series("instance=\"h2:9901\",pod=\"iotex-delegate-1\""), "values": "1x4"},
                {"series": series("instance=\"h3:9901\""), "values": "1x4"},
            ],
            "promql_expr_test": [{
                "expr": format!("dashboard:query{node_mode}"),
                "eval_time": "30s",
                "exp_samples": [
                    expected("instance=\"h1:9901\",value=\"replica-a\"", "replica-a"),
                    expected("instance=\"h2:9901\",pod=\"iotex-delegate-1\"", "iotex-delegate-1"),
                    expected("instance=\"h3:9901\"", "h3:9901"),
                ],
            }],
        }],
    });
    std::fs::write(dir.path().join("test.yml"), test.to_string()).expect("writing");
    let test = run(Command::new("promtool")
        .args(["test", "rules", "test.yml"])
        .current_dir(dir.path()));
    assert!(test.status.success(), "{}", text(&test));
}

// ----- containers: the elector under `elector supervise` -----------------------------------

/// A `key: value` of a YAML file, outside comments: its first occurrence, unquoted.
fn yaml_value(path: &str, key: &str) -> String {
    read(path)
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("{path} has no {key}"))
        .trim()
        .trim_matches('"')
        .to_owned()
}

/// The image's entry point is `elector supervise --`, and the restart bound the Compose and
/// Kubernetes examples state (with the default timing) is one the supervisor accepts: it runs
/// the elector under a watchdog that fits, the elector gets ready, and SIGTERM ends both with
/// exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_examples_restart_bound_holds_under_supervise() {
    let dockerfile = read("docker/elector.Dockerfile");
    assert!(
        dockerfile
            .lines()
            .any(|l| l == r#"ENTRYPOINT ["/usr/local/bin/elector", "supervise", "--"]"#),
        "the image does not run the elector under supervise"
    );
    let bound = yaml_value("deploy/docker-compose.yml", "ELECTOR_RESTART_BOUND:");
    assert_eq!(
        bound,
        yaml_value(
            "deploy/kubernetes/statefulset.yaml",
            "ELECTOR_RESTART_BOUND:"
        ),
        "the Compose and Kubernetes examples state different restart bounds"
    );
    for path in [
        "deploy/docker-compose.yml",
        "deploy/kubernetes/statefulset.yaml",
    ] {
        assert!(
            !read(path).contains("ELECTOR_ACTIVATION_DELAY"),
            "{path} should use the default activation delay"
        );
    }

    let cluster = Cluster::start_with(ClusterOptions {
        nodes: 1,
        ..ClusterOptions::default()
    })
    .await;
    cluster.sigterm(0);
    cluster.wait_exit(0, SETTLE).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = dir.path().join("supervise.log");
    let file = std::fs::File::create(&log).expect("creating the log");
    let admin = format!("http://{}", cluster.node(0).admin_addr());
    let probe = format!("http://{}", cluster.node(0).probe_addr());
    let mut supervised = tokio::process::Command::from(elector_integration::host::elector_command(
        &elector_binary().expect("the elector binary"),
    ))
    .args(["supervise", "--", "--etcd", &cluster.etcd().endpoint()])
    .args(["--iotex-admin", &admin, "--iotex-probe", &probe])
    .args(["--value", "example", "--status-addr", "off"])
    .args(["--log-format", "json"])
    .env("ELECTOR_RESTART_BOUND", &bound)
    .stdin(Stdio::null())
    .stdout(file.try_clone().expect("a log handle"))
    .stderr(file)
    .kill_on_drop(true)
    .spawn()
    .expect("starting elector supervise");
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + SETTLE;
    while !log_text().contains("supervise: elector ready") {
        assert!(
            Instant::now() < deadline && supervised.try_wait().ok().flatten().is_none(),
            "the elector did not get ready under supervise with {bound}:\n{}",
            log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let watchdog_ms = log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|l| l["watchdog_ms"].as_u64())
        .expect("the supervisor logs its watchdog");
    println!(
        "--restart-bound {bound} with the default timing: supervise watchdog {watchdog_ms} ms"
    );
    let pid = supervised
        .id()
        .and_then(|id| libc::pid_t::try_from(id).ok())
        .expect("a running supervisor");
    // SAFETY: kill(2) with integers; the supervisor is our child and not reaped yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(SETTLE, supervised.wait())
        .await
        .expect("supervise exits after SIGTERM")
        .expect("waiting for supervise");
    assert_eq!(status.code(), Some(0), "{}", log_text());
    assert!(!cluster.node(0).state().active);
}
