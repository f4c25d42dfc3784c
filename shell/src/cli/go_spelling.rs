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

/// Rewrites the command line into what clap parses: drops a leading `elector` argument,
/// turns `-flag`, `-flag=v`, `--iotexAdmin=v` and the like into `--flag`/`--flag=v`, and
/// leaves values and everything else as they are. A bare `iotexProbe=URL` (the Go README's
/// typo, which the Go elector silently took for the end of its flags) is refused with the fix.
pub fn normalize_args<I: IntoIterator<Item = String>>(args: I) -> Result<Vec<String>, String> {
    let mut args = args.into_iter();
    let mut out: Vec<String> = args.next().into_iter().collect();
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
    let mut terminated = false;
    for arg in rest {
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
        if let Some((name, value)) = arg.split_once('=')
            && let Some((long, _)) =
                flag_name(name, &flags).or_else(|| flag_name(name, &root_flags))
        {
            return Err(format!(
                "{arg:?} is not a flag (no leading dash): write -{name}={value} or --{long}={value}. \
                 The Go elector's README has this typo, and the Go elector silently ignored it \
                 and every flag after it: check that -key and -value say what your Go \
                 electors really used"
            ));
        }
        out.push(arg);
    }
    Ok(out)
}
