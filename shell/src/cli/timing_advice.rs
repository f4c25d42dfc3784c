//! The timing flags as an operator sees them: the core's [`Timing`] fields by flag, their
//! values as published and compared between replicas ([`timing_values`]), and an unsafe
//! timing explained in flags ([`explain_timing`]): the inequality with the flags in it and
//! their real values (never clamped), and one flag's value that passes every check with the
//! other flags as they are, found by trying values in small steps (bounded).

use super::flags::{RunArgs, derive_timing};
use elector_core::{Timing, TimingError};
use std::fmt;
use std::time::Duration;

/// Every field of [`Timing`] and the flag that sets it.
pub const TIMING_FIELDS: [(&str, &str); 19] = [
    ("lease_ttl", "--ttl"),
    ("keepalive_interval", "--keepalive-interval"),
    ("etcd_request_timeout", "--etcd-timeout"),
    ("drain_bound", "--drain-bound"),
    ("max_clock_drift", "--max-clock-drift"),
    ("safety_margin", "--safety-margin"),
    ("node_timeout", "--node-timeout"),
    ("node_check_interval", "--node-check-interval"),
    ("confirm_poll_interval", "--confirm-poll-interval"),
    ("probe_interval", "--probe-interval"),
    ("unready_threshold", "--unready-threshold"),
    ("restart_bound", "--restart-bound"),
    ("activation_delay", "--activation-delay"),
    ("handover_timeout", "--handover-timeout"),
    ("node_lost_after", "--node-lost-after"),
    ("block_interval", "--block-interval"),
    ("tolerated_overtime", "--tolerated-overtime"),
    ("unmatched_event_interval", "--unmatched-event-interval"),
    ("max_clock_offset", "--max-clock-offset"),
];

/// The flag of a [`Timing`] field.
pub fn flag_of_field(field: &str) -> Option<&'static str> {
    TIMING_FIELDS
        .iter()
        .find(|(name, _)| *name == field)
        .map(|(_, flag)| *flag)
}

/// One timing value: a duration, the drift ratio, or the unready threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TimingValue {
    Duration(Duration),
    Ratio(f64),
    Count(u32),
}

impl fmt::Display for TimingValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimingValue::Duration(d) => write!(f, "{}", humantime::format_duration(*d)),
            TimingValue::Ratio(r) => write!(f, "{r}"),
            TimingValue::Count(n) => write!(f, "{n}"),
        }
    }
}

/// Every value of `t`, by field, in [`TIMING_FIELDS`]' order.
pub fn timing_values(t: &Timing) -> Vec<(&'static str, TimingValue)> {
    use TimingValue::{Count, Duration as D, Ratio};
    vec![
        ("lease_ttl", D(t.lease_ttl)),
        ("keepalive_interval", D(t.keepalive_interval)),
        ("etcd_request_timeout", D(t.etcd_request_timeout)),
        ("drain_bound", D(t.drain_bound)),
        ("max_clock_drift", Ratio(t.max_clock_drift)),
        ("safety_margin", D(t.safety_margin)),
        ("node_timeout", D(t.node_timeout)),
        ("node_check_interval", D(t.node_check_interval)),
        ("confirm_poll_interval", D(t.confirm_poll_interval)),
        ("probe_interval", D(t.probe_interval)),
        ("unready_threshold", Count(t.unready_threshold)),
        ("restart_bound", D(t.restart_bound)),
        ("activation_delay", D(t.activation_delay)),
        ("handover_timeout", D(t.handover_timeout)),
        ("node_lost_after", D(t.node_lost_after)),
        ("block_interval", D(t.block_interval)),
        ("tolerated_overtime", D(t.tolerated_overtime)),
        ("unmatched_event_interval", D(t.unmatched_event_interval)),
        ("max_clock_offset", D(t.max_clock_offset)),
    ]
}

/// A flag the advice may move, and which way moving it helps.
#[derive(Clone, Copy)]
struct Knob {
    field: &'static str,
    up: bool,
}

const fn up(field: &'static str) -> Knob {
    Knob { field, up: true }
}

const fn down(field: &'static str) -> Knob {
    Knob { field, up: false }
}

/// The flags that can mend each inequality, in the order they are suggested. The chain's
/// flags are never suggested: they must say what the chain does.
fn knobs(inequality: &str) -> Vec<Knob> {
    match inequality {
        "etcd_minimum_ttl" => vec![up("lease_ttl")],
        "margin_covers_standby_confirmation" => vec![
            up("safety_margin"),
            down("node_timeout"),
            down("confirm_poll_interval"),
        ],
        "drain_covers_consensus_tail" => vec![up("drain_bound")],
        "activation_room_covers_node_call" => vec![
            down("node_timeout"),
            up("keepalive_interval"),
            up("etcd_request_timeout"),
        ],
        "renewal_window" => vec![
            up("lease_ttl"),
            down("safety_margin"),
            down("drain_bound"),
            down("etcd_request_timeout"),
            down("keepalive_interval"),
        ],
        "dead_connection_replaced" => vec![
            up("lease_ttl"),
            down("keepalive_interval"),
            down("etcd_request_timeout"),
        ],
        "node_lost_spans_reads" => vec![
            up("node_lost_after"),
            down("node_check_interval"),
            down("node_timeout"),
        ],
        "activation_delay_covers_dead_leader" | "activation_delay_covers_early_revocation" => {
            vec![up("activation_delay")]
        }
        _ => vec![],
    }
}

/// The flags' values a search moves: the base timing and the two derived flags if given.
#[derive(Clone)]
struct Setting {
    base: Timing,
    drain_bound: Option<Duration>,
    activation_delay: Option<Duration>,
}

impl Setting {
    fn timing(&self) -> Timing {
        derive_timing(self.base.clone(), self.drain_bound, self.activation_delay)
    }

    fn get(&self, field: &str) -> Duration {
        let t = self.timing();
        match field {
            "lease_ttl" => t.lease_ttl,
            "keepalive_interval" => t.keepalive_interval,
            "etcd_request_timeout" => t.etcd_request_timeout,
            "drain_bound" => t.drain_bound,
            "safety_margin" => t.safety_margin,
            "node_timeout" => t.node_timeout,
            "confirm_poll_interval" => t.confirm_poll_interval,
            "node_check_interval" => t.node_check_interval,
            "node_lost_after" => t.node_lost_after,
            "activation_delay" => t.activation_delay,
            _ => Duration::ZERO,
        }
    }

    fn set(&mut self, field: &str, value: Duration) {
        let b = &mut self.base;
        match field {
            "lease_ttl" => b.lease_ttl = value,
            "keepalive_interval" => b.keepalive_interval = value,
            "etcd_request_timeout" => b.etcd_request_timeout = value,
            "drain_bound" => self.drain_bound = Some(value),
            "safety_margin" => b.safety_margin = value,
            "node_timeout" => b.node_timeout = value,
            "confirm_poll_interval" => b.confirm_poll_interval = value,
            "node_check_interval" => b.node_check_interval = value,
            "node_lost_after" => b.node_lost_after = value,
            "activation_delay" => self.activation_delay = Some(value),
            _ => {}
        }
    }
}

/// Steps tried per knob, at most: the search is bounded.
const MAX_STEPS: u32 = 600;

/// The step of a flag's search: whole seconds for the lease (etcd counts in seconds), 100 ms
/// otherwise.
fn step(field: &str) -> Duration {
    match field {
        "lease_ttl" => Duration::from_secs(1),
        _ => Duration::from_millis(100),
    }
}

/// The value of `knob`'s flag nearest to its current value, on its step grid, with which every
/// inequality holds, the other flags as they are; `None` if no value within [`MAX_STEPS`]
/// steps does.
fn mend(setting: &Setting, knob: Knob) -> Option<Duration> {
    let step = step(knob.field);
    let now = setting.get(knob.field);
    // The grid: multiples of the step, starting next to the current value.
    let first = (now.as_millis() / step.as_millis()) as u32;
    for i in 1..=MAX_STEPS {
        let n = if knob.up {
            first + i
        } else {
            first.checked_sub(i).filter(|n| *n > 0)?
        };
        let value = step * n;
        let mut tried = setting.clone();
        tried.set(knob.field, value);
        if tried.timing().validate().is_ok() {
            return Some(value);
        }
    }
    None
}

/// Seconds with the sign kept: what the core's details clamp at zero.
fn signed(seconds: f64) -> String {
    format!("{seconds:.3}s")
}

/// The inequality's detail in flags: the core's words with each field named by its flag, or,
/// where the core clamps a difference at zero, the real difference.
fn detail(error: &TimingError, t: &Timing) -> String {
    let secs = |d: Duration| d.as_secs_f64();
    let window =
        secs(t.lease_ttl) * (1.0 - t.max_clock_drift) - secs(t.drain_bound) - secs(t.safety_margin);
    let window_text = format!(
        "--ttl {} x (1 - --max-clock-drift {}) - --drain-bound {} - --safety-margin {} = {}",
        signed(secs(t.lease_ttl)),
        t.max_clock_drift,
        signed(secs(t.drain_bound)),
        signed(secs(t.safety_margin)),
        signed(window)
    );
    match error.inequality {
        "renewal_window" => format!(
            "{window_text} must exceed --etcd-timeout + --keepalive-interval + --etcd-timeout = \
             {} (the lease must outlast the drain and a keep-alive round)",
            signed(secs(t.etcd_request_timeout + t.activation_room()))
        ),
        "dead_connection_replaced" => format!(
            "{window_text} must exceed --keepalive-interval + --etcd-timeout + \
             --keepalive-interval / 4 + --etcd-timeout = {} (a leader must ride through a \
             silently dead etcd connection)",
            signed(secs(
                t.dead_connection_bound() + t.keepalive_retry_interval() + t.etcd_request_timeout
            ))
        ),
        _ => {
            let mut text = error.detail.clone();
            // Longest names first: none is then a part of another when it is replaced.
            let mut fields: Vec<(&str, &str)> = TIMING_FIELDS.to_vec();
            fields.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
            for (name, flag) in fields {
                text = text.replace(name, flag);
            }
            text
        }
    }
}

/// An unsafe timing as one line: the inequality in flags, and what to change.
pub fn explain_timing(error: &TimingError, args: &RunArgs) -> String {
    let setting = Setting {
        base: args.base_timing(),
        drain_bound: args.drain_bound,
        activation_delay: args.activation_delay,
    };
    let timing = setting.timing();
    let given = |field: &str| match field {
        "drain_bound" => args.drain_bound.is_some(),
        "activation_delay" => args.activation_delay.is_some(),
        _ => super::flags::PROFILE_FLAGS
            .iter()
            .any(|(id, flag)| args.explicit.contains(*id) && flag_of_field(field) == Some(*flag)),
    };
    let mut found: Vec<(bool, String)> = knobs(error.inequality)
        .into_iter()
        .filter_map(|knob| {
            let value = mend(&setting, knob)?;
            let flag = flag_of_field(knob.field)?;
            let value = humantime::format_duration(value);
            let text = if knob.up {
                format!("{flag} {value} (the smallest that passes every check)")
            } else {
                format!("{flag} {value} (the largest that passes every check)")
            };
            Some((given(knob.field), text))
        })
        .collect();
    // What the operator set comes first: it is what they changed.
    found.sort_by_key(|(given, _)| !*given);
    let advice = match found.as_slice() {
        [] => match error.inequality {
            "positive_intervals" | "drift_bound" => {
                let profile = args.profile.timing();
                let named = timing_values(&profile).into_iter().find(|(field, _)| {
                    flag_of_field(field).is_some_and(|flag| {
                        error.detail.starts_with(&format!("{field} "))
                            || error.detail.starts_with(flag)
                    })
                });
                match named {
                    Some((field, value)) => format!(
                        "--profile {} sets {} {value}",
                        args.profile.as_str(),
                        flag_of_field(field).unwrap_or(field)
                    ),
                    None => "give it a value in range, like its default".to_owned(),
                }
            }
            _ => "no single flag mends it: start again from --profile default or --profile fast"
                .to_owned(),
        },
        [one] => format!("set {}", one.1),
        [one, two, ..] => format!("set {}, or {}", one.1, two.1),
    };
    let and_derived = match (args.drain_bound, args.activation_delay, error.inequality) {
        (_, Some(_), "activation_delay_covers_dead_leader")
        | (_, Some(_), "activation_delay_covers_early_revocation") => {
            "; or leave --activation-delay out: the smallest safe one is then taken"
        }
        (Some(_), _, "drain_covers_consensus_tail") => {
            "; or leave --drain-bound out: the chain flags' drain is then taken"
        }
        _ => "",
    };
    format!(
        "unsafe timing ({}): {}; {advice}{and_derived} (docs/safety.md)",
        error.inequality,
        detail(error, &timing)
    )
}
