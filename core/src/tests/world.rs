//! A randomized world for the property tests: an etcd-ish store with leases, candidate keys,
//! handover keys and a watch; an IoTeX-ish node that drains after `activate=false`; other
//! candidates that join, leave, crash and hand over; an operator who asks for handovers and
//! shutdowns, and excludes us for a while. It answers the core's commands with random latencies, always within the bounds
//! the real driver enforces with its timeouts (`node_timeout`, `etcd_request_timeout`).
//!
//! The world also keeps one piece of truth the core cannot see: until when a previous leader's
//! node may still sign for a slot ours would use (`danger_until`), so a property can check that
//! the core never activates over it.
//!
//! One cohesive job in one file: etcd, the node and the operator share one event queue and
//! clock and answer each other's effects (a lease expiry publishes a watch event, a crash of
//! the leader affects the node's danger window), so the world reads as one simulation; the
//! scenarios it plays are in `scenario.rs`.

use super::scenario::{Happening, Scenario, Target, timing};
use crate::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// Per-call randomness, from the scenario's seed (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Percent chance.
    fn chance(&mut self, pct: u8) -> bool {
        self.next() % 100 < u64::from(pct)
    }

    /// `max` one time in three (worst cases matter most), else uniform in `[min, max]`.
    fn up_to(&mut self, min: Duration, max: Duration) -> Duration {
        if self.next().is_multiple_of(3) {
            max.max(min)
        } else {
            self.between(min, max)
        }
    }

    /// Uniform in `[min, max]`, at millisecond resolution.
    fn between(&mut self, min: Duration, max: Duration) -> Duration {
        let (lo, hi) = (min.as_millis() as u64, max.as_millis() as u64);
        Duration::from_millis(lo + self.next() % (hi.saturating_sub(lo) + 1))
    }
}

#[derive(Clone, Debug)]
struct Key {
    id: CandidateId,
    value: String,
}

#[derive(Debug)]
enum Event {
    /// Hand this input to the core.
    Deliver(Input),
    Happen(Happening),
    /// etcd serves a request (its effect happens now), answered at `answer_at`.
    EtcdServe {
        command: Command,
        sent: Instant,
        answer_at: Instant,
    },
    /// The node serves a call; `fail` reports failure even though it was served.
    NodeServe {
        id: CallId,
        call: NodeCall,
        answer_at: Instant,
        fail: bool,
    },
    Expire(LeaseId),
    /// The watch reports the current state.
    Publish,
    /// Other candidates react to a handover request.
    OthersReact,
    /// The successor of a churned leader crashes.
    CrashLeader,
    /// `elector include us`: the operator's exclusion ends.
    Include,
}

pub(super) struct World {
    pub timing: Timing,
    sc: Scenario,
    rng: Rng,
    pub now: Instant,
    queue: BTreeMap<(Instant, u64), Event>,
    seq: u64,
    // etcd
    revision: i64,
    keys: Vec<Key>,
    record: Option<HandoverRecord>,
    request: Option<HandoverRequest>,
    /// `<key>.elector/excluded/us`: the operator excluded us.
    excluded: Option<Exclusion>,
    /// Our leases alive at etcd: expiry and granted TTL.
    leases: BTreeMap<LeaseId, (Instant, Duration)>,
    next_lease: LeaseId,
    next_other: i64,
    observing: bool,
    outage_until: Instant,
    keepalive_losses: u32,
    // node
    node_active: bool,
    /// Key custody: the node holds the operator's key (it starts with it when misconfigured to
    /// start active, as if it booted with the real key).
    operator_key: bool,
    key_custody: bool,
    drained_at: Instant,
    unready_until: Instant,
    hung_until: Instant,
    admin_broken_until: Instant,
    dead_until: Instant,
    activation_refused_until: Instant,
    /// The node broke its promises (restarted, hung): a fence may be right.
    pub node_misbehaved: bool,
    // truth
    /// Activating before then lets our node sign a height and round a previous leader's node
    /// may sign too: it crashed while leading (it signs until its supervisor's command drained,
    /// and our node would use that slot within the tolerated overtime), or it handed over
    /// cleanly just now (its last slot, rule `wait_out_last_slot`).
    pub danger_until: Instant,
    pub exited: bool,
}

pub(super) const US: &str = "us";

impl World {
    pub(super) fn new(sc: &Scenario) -> Self {
        let timing = timing(sc.profile);
        let mut w = World {
            timing,
            sc: sc.clone(),
            rng: Rng(sc.seed),
            now: Instant::ZERO,
            queue: BTreeMap::new(),
            seq: 0,
            revision: 10,
            keys: Vec::new(),
            record: None,
            request: None,
            excluded: None,
            leases: BTreeMap::new(),
            next_lease: 1,
            next_other: 1,
            observing: false,
            outage_until: Instant::ZERO,
            keepalive_losses: 0,
            node_active: sc.node_starts_active,
            operator_key: sc.node_starts_active,
            key_custody: sc.key_custody(),
            drained_at: Instant::ZERO,
            unready_until: Instant::ZERO,
            hung_until: Instant::ZERO,
            admin_broken_until: Instant::ZERO,
            dead_until: Instant::ZERO,
            activation_refused_until: Instant::ZERO,
            node_misbehaved: sc.node_starts_active || sc.node_fail_pct > 0,
            danger_until: Instant::ZERO,
            exited: false,
        };
        for _ in 0..sc.others_ahead {
            w.add_other();
        }
        for (at, h) in sc.happenings.clone() {
            w.at(Instant::from_millis(at.into()), Event::Happen(h));
        }
        w
    }

    /// Key custody is on in this world.
    pub(super) fn key_custody(&self) -> bool {
        self.key_custody
    }

    /// Every run of the fence succeeds in this world.
    pub(super) fn fence_works(&self) -> bool {
        self.sc.fence_fail_pct == 0
    }

    pub(super) fn end(&self) -> Instant {
        Instant::from_millis(self.sc.duration_ms.into())
    }

    /// Instant of the next world event.
    pub(super) fn next_at(&self) -> Option<Instant> {
        self.queue.keys().next().map(|(at, _)| *at)
    }

    /// Runs the next world event; returns the inputs it produces for the core, at `self.now`.
    pub(super) fn step(&mut self) -> Vec<Input> {
        let Some(((at, _), event)) = self.queue.pop_first() else {
            return Vec::new();
        };
        self.now = at;
        let mut inputs = Vec::new();
        match event {
            Event::Deliver(input) => inputs.push(input),
            Event::Happen(h) => self.happen(h, &mut inputs),
            Event::EtcdServe {
                command,
                sent,
                answer_at,
            } => self.etcd_serve(command, sent, answer_at),
            Event::NodeServe {
                id,
                call,
                answer_at,
                fail,
            } => self.node_serve(id, call, answer_at, fail),
            Event::Expire(lease) => {
                if self.leases.get(&lease).is_some_and(|(exp, _)| *exp <= at) {
                    self.revoke(lease);
                }
            }
            Event::Publish => {
                if self.now < self.outage_until {
                    let lag = self.watch_lag();
                    self.at(self.outage_until + lag, Event::Publish);
                } else {
                    inputs.push(Input::Observed(self.observation()));
                }
            }
            Event::OthersReact => self.others_react(),
            Event::CrashLeader => {
                if let Some(first) = self.keys.first().filter(|k| k.value != US).cloned() {
                    self.remove_other(first.id, false);
                }
            }
            Event::Include => {
                if self.excluded.take().is_some() {
                    self.revision += 1;
                    self.changed();
                }
            }
        }
        inputs
    }

    /// The core emitted `command` at `self.now`: schedule the world's answer.
    pub(super) fn on_command(&mut self, command: &Command) {
        let now = self.now;
        let t = self.timing.clone();
        match command {
            Command::Observe => {
                self.observing = true;
                self.changed();
            }
            Command::GrantLease { .. }
            | Command::KeepAlive { .. }
            | Command::CreateCandidate { .. }
            | Command::Resign { .. } => {
                let lost =
                    matches!(command, Command::KeepAlive { .. }) && self.keepalive_losses > 0;
                if lost {
                    self.keepalive_losses -= 1;
                }
                if lost || self.rng.chance(self.sc.etcd_fail_pct) {
                    // Lost on the way (or its answer was): the driver times out.
                    let failure = failure_of(command);
                    self.at(now + t.etcd_request_timeout, Event::Deliver(failure));
                    return;
                }
                let max = t.etcd_request_timeout * u32::from(self.sc.etcd_latency_pct) / 100;
                let total = self.rng.up_to(Duration::from_millis(1), max);
                let serve = self.rng.between(Duration::ZERO, total);
                self.at(
                    now + serve,
                    Event::EtcdServe {
                        command: command.clone(),
                        sent: now,
                        answer_at: now + total,
                    },
                );
            }
            Command::Node { id, call } => {
                let max = t.node_timeout * u32::from(self.sc.node_latency_pct) / 100;
                let latency = self.rng.up_to(Duration::from_millis(1), max);
                // Served somewhere on the way: the answer may come well after the effect.
                let serve = self.rng.between(Duration::ZERO, latency);
                let fail = self.rng.chance(self.sc.node_fail_pct);
                if now < self.dead_until {
                    // Connection refused, at once.
                    let failed = Input::NodeCallFailed {
                        id: *id,
                        call: *call,
                        reason: "connection refused".into(),
                    };
                    self.at(now + ms(1), Event::Deliver(failed));
                    return;
                }
                if now < self.admin_broken_until || (fail && self.rng.chance(50)) {
                    // Never reached the node: the driver gives up at its timeout.
                    let failed = Input::NodeCallFailed {
                        id: *id,
                        call: *call,
                        reason: "timeout".into(),
                    };
                    self.at(now + t.node_timeout, Event::Deliver(failed));
                    return;
                }
                let served = Event::NodeServe {
                    id: *id,
                    call: *call,
                    answer_at: now + latency,
                    fail,
                };
                self.at(now + serve, served);
            }
            Command::ProbeReadiness => {
                let latency = self.rng.up_to(ms(1), t.node_timeout);
                let at = now + latency;
                let ready = at >= self.unready_until && !self.rng.chance(self.sc.probe_flake_pct);
                let detail = if ready { "OK" } else { "FAIL" }.to_string();
                self.at(at, Event::Deliver(Input::Probed { ready, detail }));
            }
            Command::Fence { run, .. } => {
                // A fence that works stops the node's signing; one that fails does nothing.
                let success = !self.rng.chance(self.sc.fence_fail_pct);
                if success {
                    self.node_active = false;
                    self.drained_at = Instant::ZERO;
                }
                let done = Input::FenceDone {
                    run: *run,
                    success,
                    detail: if success {
                        "node stopped"
                    } else {
                        "fence failed"
                    }
                    .into(),
                };
                let after = self.rng.between(Duration::ZERO, fence_bound());
                self.at(now + after, Event::Deliver(done));
            }
            Command::Exit { .. } => self.exited = true,
            Command::RememberTerm { .. } => {}
        }
    }

    // ----- etcd -------------------------------------------------------------------------

    fn etcd_serve(&mut self, command: Command, sent: Instant, answer_at: Instant) {
        let now = self.now;
        if now < self.outage_until {
            let failure = failure_of(&command);
            let at = sent + self.timing.etcd_request_timeout;
            self.at(at, Event::Deliver(failure));
            return;
        }
        let answer = match command {
            Command::GrantLease { ttl } => {
                let ttl = if self.sc.bigger_ttl {
                    ttl + Duration::from_secs(5)
                } else {
                    ttl
                };
                let lease = self.next_lease;
                self.next_lease += 1;
                self.leases.insert(lease, (now + ttl, ttl));
                self.at(now + ttl, Event::Expire(lease));
                Input::LeaseGranted {
                    lease,
                    ttl,
                    sent_at: sent,
                }
            }
            Command::KeepAlive { lease } => match self.leases.get(&lease).copied() {
                Some((_, ttl)) => {
                    self.leases.insert(lease, (now + ttl, ttl));
                    self.at(now + ttl, Event::Expire(lease));
                    Input::KeepAliveAcked {
                        lease,
                        sent_at: sent,
                        ttl,
                    }
                }
                None => Input::KeepAliveAcked {
                    lease,
                    sent_at: sent,
                    ttl: Duration::ZERO,
                },
            },
            Command::CreateCandidate { lease } => {
                if !self.leases.contains_key(&lease) {
                    Input::CandidateCreateFailed {
                        lease,
                        reason: "lease not found".into(),
                    }
                } else if let Some(key) = self.keys.iter().find(|k| k.id.lease == lease) {
                    Input::CandidateCreated {
                        lease,
                        create_revision: key.id.create_revision,
                    }
                } else {
                    self.revision += 1;
                    let id = CandidateId {
                        lease,
                        create_revision: self.revision,
                    };
                    self.keys.push(Key {
                        id,
                        value: US.into(),
                    });
                    self.changed();
                    Input::CandidateCreated {
                        lease,
                        create_revision: id.create_revision,
                    }
                }
            }
            Command::Resign { lease, record, .. } => {
                let ours = self.keys.iter().any(|k| k.id.lease == lease);
                if let Some(record) = record
                    && ours
                {
                    self.record = Some(record);
                    self.request = None;
                }
                self.revoke(lease);
                Input::Resigned { lease }
            }
            other => unreachable!("not an etcd command: {other:?}"),
        };
        self.at(answer_at, Event::Deliver(answer));
    }

    fn revoke(&mut self, lease: LeaseId) {
        self.leases.remove(&lease);
        let before = self.keys.len();
        self.keys.retain(|k| k.id.lease != lease);
        if self.keys.len() != before {
            self.revision += 1;
            self.changed();
        }
    }

    fn observation(&self) -> Observation {
        Observation {
            revision: self.revision,
            candidates: self
                .keys
                .iter()
                .map(|k| Candidate {
                    id: k.id,
                    value: k.value.clone(),
                })
                .collect(),
            handover_record: self.record.clone(),
            handover_request: self.request.clone(),
            excluded: self.excluded.clone(),
        }
    }

    /// The election changed: the watch reports it after a lag.
    fn changed(&mut self) {
        if self.observing {
            let lag = self.watch_lag();
            self.at(self.now + lag, Event::Publish);
        }
    }

    fn watch_lag(&mut self) -> Duration {
        self.rng
            .between(ms(1), Duration::from_millis(self.sc.watch_lag_ms.into()))
    }

    fn add_other(&mut self) {
        self.revision += 1;
        let n = self.next_other;
        self.next_other += 1;
        self.keys.push(Key {
            id: CandidateId {
                lease: 1000 + n,
                create_revision: self.revision,
            },
            value: format!("o{n}"),
        });
    }

    /// Another candidate leaves. A leader that leaves cleanly writes a handover record, but
    /// only once every earlier leader's node is known standby (it passed its own activation
    /// gate), and its own node, proven standby by a read just now, may still sign for its last
    /// slot; one that crashes leaves its node possibly signing for restart + drain bound. In
    /// both cases a node of ours that prepares within the slot clearance (tolerated overtime
    /// and clock offset) of that slot's start signs it again.
    fn remove_other(&mut self, id: CandidateId, clean: bool) {
        let Some(pos) = self.keys.iter().position(|k| k.id == id) else {
            return;
        };
        let key = self.keys.remove(pos);
        let clearance = self.timing.slot_clearance();
        if pos == 0 {
            if !clean {
                let until =
                    self.now + self.timing.restart_bound + self.timing.drain_bound + clearance;
                self.danger_until = self.danger_until.max(until);
            } else if self.now >= self.danger_until {
                // With key custody the leaver withdrew its key before the record: its node
                // signed for the last time before now.
                let key_withdrawn = self.key_custody;
                self.record = Some(HandoverRecord {
                    from: key.id,
                    value: key.value,
                    key_withdrawn,
                });
                self.request = None;
                let last_slot = if key_withdrawn {
                    Duration::ZERO
                } else {
                    self.timing.last_slot_after_standby_read()
                };
                self.danger_until = self.now + last_slot + clearance;
            }
        }
        self.revision += 1;
        self.changed();
    }

    fn others(&self) -> Vec<Key> {
        self.keys
            .iter()
            .filter(|k| k.value != US)
            .cloned()
            .collect()
    }

    fn resolve(&self, target: &Target) -> Option<String> {
        match target {
            Target::NextInLine => None,
            Target::Us => Some(US.into()),
            Target::Other(i) => {
                let others = self.others();
                Some(if others.is_empty() {
                    "ghost".into()
                } else {
                    others[usize::from(*i) % others.len()].value.clone()
                })
            }
            Target::Nobody => Some("ghost".into()),
        }
    }

    /// Other electors follow a handover request: a leading other hands over once its
    /// successor is next in line; others ahead of a named target step aside.
    fn others_react(&mut self) {
        let Some(request) = self.request.clone() else {
            return;
        };
        if let Some(to) = &request.to
            && let Some(target) = self.keys.iter().position(|k| &k.value == to)
        {
            let aside: Vec<Key> = self.keys[1..target.max(1)]
                .iter()
                .filter(|k| k.value != US)
                .cloned()
                .collect();
            for key in aside {
                self.keys.retain(|k| k.id != key.id);
                self.revision += 1;
                self.keys.push(Key {
                    id: CandidateId {
                        lease: key.id.lease,
                        create_revision: self.revision,
                    },
                    value: key.value,
                });
                self.changed();
            }
        }
        if let Some(leader) = self.keys.first().filter(|k| k.value != US).cloned() {
            let next = self.keys.get(1);
            let ready = match (&request.to, next) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(to), Some(next)) => &next.value == to,
            };
            if ready {
                self.remove_other(leader.id, true);
                self.request = None;
            }
        }
        if self.request.is_some() {
            let at = self.now + Duration::from_secs(1);
            self.at(at, Event::OthersReact);
        }
    }

    fn happen(&mut self, happening: Happening, inputs: &mut Vec<Input>) {
        let now = self.now;
        match happening {
            Happening::EtcdOutage { ms: d } => {
                if now >= self.outage_until && self.observing {
                    inputs.push(Input::ObserveFailed {
                        reason: "etcd unavailable".into(),
                    });
                }
                self.outage_until = self.outage_until.max(now + ms(d.into()));
            }
            Happening::KeepAliveLoss { count } => self.keepalive_losses += u32::from(count),
            Happening::OtherJoins => {
                self.add_other();
                self.changed();
            }
            Happening::OtherLeaves { pick, clean } => {
                let others = self.others();
                if !others.is_empty() {
                    let id = others[usize::from(pick) % others.len()].id;
                    self.remove_other(id, clean);
                }
            }
            Happening::LeaderChurn { gap_ms } => {
                if let Some(first) = self.keys.first().filter(|k| k.value != US).cloned() {
                    self.remove_other(first.id, true);
                    self.at(now + ms(gap_ms.into()), Event::CrashLeader);
                }
            }
            Happening::Unready { ms: d } => {
                self.unready_until = self.unready_until.max(now + ms(d.into()));
            }
            Happening::NodeRestarts { active } => {
                self.node_misbehaved = true;
                self.node_active = active;
                // Its configuration: the placeholder key, or, misconfigured, the real one.
                self.operator_key = active;
                self.drained_at = Instant::ZERO;
                self.unready_until = self.unready_until.max(now + Duration::from_secs(2));
            }
            Happening::AdminBroken { ms: d } => {
                self.node_misbehaved = true;
                self.admin_broken_until = self.admin_broken_until.max(now + ms(d.into()));
            }
            Happening::NodeDies { ms: d } => {
                self.node_misbehaved = true;
                self.node_active = false;
                self.operator_key = false;
                self.drained_at = Instant::ZERO;
                self.dead_until = self.dead_until.max(now + ms(d.into()));
            }
            Happening::ActivationRefused { ms: d } => {
                self.node_misbehaved = true;
                self.activation_refused_until =
                    self.activation_refused_until.max(now + ms(d.into()));
            }
            Happening::NodeHangs { ms: d } => {
                self.node_misbehaved = true;
                self.hung_until = self.hung_until.max(now + ms(d.into()));
            }
            Happening::LocalHandover(target) => {
                let to = self.resolve(&target);
                inputs.push(Input::HandoverRequested { to });
            }
            Happening::RequestedHandover(target) => {
                let to = self.resolve(&target);
                self.revision += 1;
                self.request = Some(HandoverRequest {
                    to,
                    revision: self.revision,
                });
                self.changed();
                self.at(now + Duration::from_millis(300), Event::OthersReact);
            }
            Happening::Excluded { ms: d } => {
                if self.excluded.is_none() {
                    self.excluded = Some(Exclusion {
                        by: "ops@host".into(),
                        at: "2026-11-30T12:00:00Z".into(),
                        reason: "maintenance".into(),
                    });
                    self.revision += 1;
                    self.changed();
                    self.at(now + ms(d.into()), Event::Include);
                }
            }
            Happening::Shutdown => inputs.push(Input::ShutdownRequested),
        }
    }

    // ----- node -------------------------------------------------------------------------

    fn node_serve(&mut self, id: CallId, call: NodeCall, answer_at: Instant, fail: bool) {
        let now = self.now;
        if call == NodeCall::SetActive && now < self.activation_refused_until {
            let refused = Input::NodeCallFailed {
                id,
                call,
                reason: "HTTP 500".into(),
            };
            self.at(answer_at, Event::Deliver(refused));
            return;
        }
        let active = match call {
            NodeCall::SetActive => {
                self.node_active = true;
                self.drained_at = Instant::ZERO;
                None
            }
            NodeCall::SetStandby => {
                if self.node_active {
                    self.node_active = false;
                    let drain = self.rng.up_to(Duration::ZERO, self.timing.drain_bound);
                    self.drained_at = now.max(self.hung_until) + drain;
                }
                None
            }
            NodeCall::ReadMode => Some(self.node_active || now < self.drained_at),
            NodeCall::InstallKey => {
                self.operator_key = true;
                None
            }
            NodeCall::WithdrawKey => {
                self.operator_key = false;
                None
            }
            NodeCall::ReadKeys => None,
        };
        let keys = matches!(
            call,
            NodeCall::InstallKey | NodeCall::WithdrawKey | NodeCall::ReadKeys
        )
        .then_some(if self.operator_key {
            NodeKeys::Operator
        } else {
            NodeKeys::Placeholder
        });
        let answer = if fail {
            Input::NodeCallFailed {
                id,
                call,
                reason: "bad answer".into(),
            }
        } else {
            Input::NodeCallDone {
                id,
                call,
                active,
                keys,
            }
        };
        self.at(answer_at, Event::Deliver(answer));
    }

    fn at(&mut self, at: Instant, event: Event) {
        self.seq += 1;
        self.queue.insert((at.max(self.now), self.seq), event);
    }
}

/// Longest the fence command runs in this world.
pub(super) fn fence_bound() -> Duration {
    Duration::from_secs(1)
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// The failure report the driver gives for an etcd command.
fn failure_of(command: &Command) -> Input {
    let reason = "etcd request timed out".to_string();
    match command {
        Command::GrantLease { .. } => Input::LeaseGrantFailed { reason },
        Command::KeepAlive { lease } => Input::KeepAliveFailed {
            lease: *lease,
            reason,
        },
        Command::CreateCandidate { lease } => Input::CandidateCreateFailed {
            lease: *lease,
            reason,
        },
        Command::Resign { lease, .. } => Input::ResignFailed {
            lease: *lease,
            reason,
        },
        other => unreachable!("not an etcd command: {other:?}"),
    }
}
