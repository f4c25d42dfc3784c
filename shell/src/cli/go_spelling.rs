//! The Go elector's spellings: Go's flag package takes `-flag=v`, `--flag=v`, `-flag v` and
//! `--flag v` alike, and the Go elector's camel-case flags have conventional names here. This
//! rewrites a command line into what clap parses.

use super::Cli;
use clap::CommandFactory;
use std::collections::HashMap;

/// The Go elector's camel-case flags and their names here. Its other flags (`etcd`, `key`,
/// `value`) are spelled the same.
const GO_ALIASES: [(&str, &str); 2] =
    [("iotexAdmin", "iotex-admin"), ("iotexProbe", "iotex-probe")];

/// The long flags of a command: name, and whether it takes a value.
fn long_flags(command: &clap::Command) -> HashMap<String, bool> {
    command
        .get_arguments()
        .filter_map(|arg| {
            let takes_value = arg.get_action().takes_values();
            arg.get_long().map(|long| (long.to_string(), takes_value))
        })
        .chain([("help".to_string(), false), ("version".to_string(), false)])
        .collect()
}

/// The conventional name of a flag written as `name` (without dashes), if it is one.
fn flag_name<'a>(name: &'a str, flags: &HashMap<String, bool>) -> Option<(&'a str, bool)> {
    let name = GO_ALIASES
        .iter()
        .find(|(go, _)| *go == name)
        .map_or(name, |(_, ours)| ours);
    flags.get(name).map(|takes_value| (name, *takes_value))
}

/// The Go elector's flags that do not exist here: its first release's `-iotex` (the node's
/// admin endpoint; that release had no probe).
const GO_RETIRED: [&str; 1] = ["iotex"];

/// What to write instead of the first Go elector's `-iotex`, given `value` if it was.
fn retired_fix(value: Option<&str>) -> String {
    let url = value.unwrap_or("URL");
    format!(
        "-iotex is the first Go elector's flag for the node's admin endpoint: write \
         -iotexAdmin={url} (or --iotex-admin={url}; the elector appends /ha), and \
         -iotexProbe=URL for the node's readiness probe (iotex-core's probe port, \
         http://127.0.0.1:8080 by default)"
    )
}

/// What the Go elector said about a bare `name=value`: it took it for the end of its flags.
const GO_STOPPED_THERE: &str = "the Go elector's README and compose file have this typo, and \
    the Go elector silently ignored it and every flag after it: check that -key and -value say \
    what your Go electors really used";

/// Rewrites the command line into what clap parses (see [`normalize`]); the first problem
/// found is the error.
pub fn normalize_args<I: IntoIterator<Item = String>>(args: I) -> Result<Vec<String>, String> {
    let (args, problems) = normalize(args);
    match problems.into_iter().next() {
        Some(problem) => Err(problem),
        None => Ok(args),
    }
}

/// Rewrites the command line into what clap parses: drops a leading `elector` argument,
/// turns `-flag`, `-flag=v`, `--iotexAdmin=v` and the like into `--flag`/`--flag=v`, and
/// leaves values and everything else as they are. Returns it with every Go spelling that
/// cannot work, each with its fix, all at once: a bare `iotexProbe=URL` (the Go README's
/// typo, which the Go elector silently took for the end of its flags), a bare `iotex=URL` (the
/// Go compose file's), and the first Go elector's `-iotex`. Those are left out of the line, so
/// that what follows them is still checked.
pub fn normalize<I: IntoIterator<Item = String>>(args: I) -> (Vec<String>, Vec<String>) {
    let mut args = args.into_iter();
    let mut out: Vec<String> = args.next().into_iter().collect();
    let mut problems = Vec::new();
    let mut rest: Vec<String> = args.collect();
    // `command: [elector, -etcd=...]` in front of an image whose entry point is the elector.
    if rest.first().is_some_and(|a| {
        std::path::Path::new(a)
            .file_name()
            .is_some_and(|n| n == "elector")
    }) {
        rest.remove(0);
    }
    let root = Cli::command();
    let root_flags = long_flags(&root);
    let mut flags = root_flags.clone();
    let mut in_subcommand = false;
    let mut value_next = false;
    let mut retired: Option<(String, Option<String>)> = None;
    let mut terminated = false;
    for arg in rest {
        if let Some((flag, None)) = &retired {
            if arg.starts_with('-') {
                // No value: the next flag follows.
                flush_retired(&mut retired, &mut problems);
            } else {
                retired = Some((format!("{flag} {arg}"), Some(arg)));
                flush_retired(&mut retired, &mut problems);
                continue;
            }
        }
        if terminated || value_next {
            value_next = false;
            out.push(arg);
            continue;
        }
        if arg == "--" {
            terminated = true;
            out.push(arg);
            continue;
        }
        let dashed = arg.strip_prefix("--").or_else(|| {
            arg.strip_prefix('-')
                .filter(|body| body.chars().count() > 1)
        });
        if let Some(body) = dashed {
            let (name, value) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (body, None),
            };
            if GO_RETIRED.contains(&name) {
                retired = Some((arg.clone(), value.map(str::to_owned)));
                if value.is_none() {
                    // Its value is the next argument: wait for it.
                    continue;
                }
                flush_retired(&mut retired, &mut problems);
                continue;
            }
            match flag_name(name, &flags) {
                Some((long, takes_value)) => {
                    value_next = takes_value && value.is_none();
                    out.push(match value {
                        Some(value) => format!("--{long}={value}"),
                        None => format!("--{long}"),
                    });
                }
                None => out.push(arg),
            }
            continue;
        }
        if !in_subcommand && let Some(sub) = root.find_subcommand(&arg) {
            in_subcommand = true;
            flags = long_flags(sub);
            out.push(arg);
            continue;
        }
        if let Some((name, value)) = arg.split_once('=') {
            if let Some((long, _)) =
                flag_name(name, &flags).or_else(|| flag_name(name, &root_flags))
            {
                problems.push(format!(
                    "{arg:?} is not a flag (no leading dash): write -{name}={value} or \
                     --{long}={value}; {GO_STOPPED_THERE}"
                ));
                continue;
            }
            if GO_RETIRED.contains(&name) {
                problems.push(format!(
                    "{arg:?} is not a flag (no leading dash), and {}; {GO_STOPPED_THERE}",
                    retired_fix(Some(value))
                ));
                continue;
            }
        }
        out.push(arg);
    }
    flush_retired(&mut retired, &mut problems);
    (out, problems)
}

/// The problem of a retired Go flag seen (`-iotex`, with its value if any), once.
fn flush_retired(retired: &mut Option<(String, Option<String>)>, problems: &mut Vec<String>) {
    if let Some((written, value)) = retired.take() {
        problems.push(format!("{written:?}: {}", retired_fix(value.as_deref())));
    }
}
