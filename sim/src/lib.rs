//! # elector-sim: the elector under faults, deterministically
//!
//! Runs the shell's real driver (`elector::driver::Driver`, with the real `elector-core`, the
//! real etcd adapter over etcd-client and the real node adapter) in a [turmoil] world, against
//! a model etcd ([`etcd_model`]) and model nodes ([`elector_model::node`], shared with the
//! real-world tests), under faults drawn from a seed, and checks the recorded history. Same
//! seed, same run, same timeline.
//!
//! ## The world ([`world`], the elector host in [`host`], one run in [`run`])
//!
//! - `etcd`: the model etcd (KV, Lease, Watch over gRPC; leases expire on etcd's own clock
//!   with a 500 ms sweep; a restart keeps the data and resets leases to TTL + 1 s).
//! - `elector-i` (2 to 5 of them): the real driver, connected to etcd through
//!   `Client::from_channel` over a turmoil TCP connector (configured like production: HTTP/2
//!   pings every 10 s, ping and connect timeouts = the request timeout), to its node through
//!   hyper over turmoil TCP (one connection per call, bounded by `node_timeout`). Its clock is
//!   `TokioClock::with_rate(rate)`: each elector's clock runs at its own rate against etcd's.
//!   The fence is modeled, with an outcome drawn per scenario: absent (fails at once), fails,
//!   times out (after the 10 s `--fence-timeout`), succeeds late (1 to 10 s) or succeeds
//!   (within 300 ms). A run that reports success has stopped the node's signing before it
//!   reports; a run that fails leaves the node as it is.
//! - `node-i`: the node model behind `/ha` (port 9009) and `/readiness` (port 8080). A node's
//!   consensus round lasts `drain_bound`, so after `activate=false` it stays active until its
//!   round ends, never longer than `drain_bound`.
//! - The supervisor (systemd) is modeled by the world loop: when an elector dies, its node is
//!   commanded standby after a drawn delay (`ExecStopPost`), and the elector is restarted.
//!
//! turmoil steps every host by one tick (5 ms by default) at a time; each host's tokio clock
//! is paused and advanced exactly, so timers fire at their instants, while network messages are
//! delivered at step boundaries. Time stamps are turmoil's global simulated time. turmoil's
//! TCP does not retransmit: a partition that drops a segment leaves the connection silently
//! dead until an HTTP/2 ping notices (real TCP would often recover from a short partition),
//! which is why the liveness bound is longer than TTL + activation delay.
//!
//! ## Determinism
//!
//! A seed fixes the schedule ([`rng`], SplitMix64), turmoil's random numbers (latencies) and
//! the model etcd's lease ids. Three sources of run-to-run variation had to go: tokio's
//! `select!` picks a random branch when several are ready (the shell's loops now say
//! `biased;`); tokio's `watch` channel wakes its waiters in a random order (the model etcd
//! wakes its streams through a FIFO `Notify` instead); and a crashed runtime drops its tasks in
//! an order that depends on process-wide task ids, each dropped connection drawing a latency
//! for its FIN (crashes and restarts happen with zero latency on the host's links, so every
//! draw gives the same value). `--verify-determinism` runs every seed twice in one process
//! and compares the timelines; a test does the same for one seed.
//!
//! ## Faults ([`schedule`])
//!
//! Drawn from the seed: partitions elector-etcd (both ways, one way each way; one elector or
//! all), hold/release delay spikes, latency rises, etcd crash and restart, elector crash and
//! restart (`ExecStopPost` within `restart_bound`, or late or never), SIGTERM (clean handover)
//! and restart, handover requests, an operator's exclusion of one replica and its inclusion
//! (`elector exclude`/`include`, in 35 % of runs, from its own stream), node restarts (standby start; misconfigured active start),
//! readiness flaps, admin faults (500, garbage body, hang), etcd revoking every lease early
//! right after renewing the leader's while the leader is cut off (etcd before 3.4.31 does so
//! when a stalled raft leader resumes; in 25 % of runs, from its own stream; rule
//! `activation_delay_covers_early_revocation`), and per-elector clock rates within
//! `max_clock_drift` (sometimes beyond). Faults on one resource never overlap; every such fault
//! heals; no fault starts after 70 s. In 30 % of the runs a node fault also *persists* to the
//! end, from a time between 5 and 60 s, on the node active then (the leader's): the node dies
//! for good; or its `/ha` breaks for good (500, garbage, hang) while it keeps signing, and
//! sometimes its elector then gets a SIGTERM it is left with (never killed); or the node
//! restarts and refuses `activate=true` from then on. Half of those runs have no transient
//! fault after it.
//!
//! ## Verdicts ([`check`], [`judge`], [`verdict::Outcome`], rendered by [`render`])
//!
//! - **Safety**: at no instant are two nodes active (the drain tail counts as active).
//! - **Liveness**: exactly one node is active, alone, from at most [`check::liveness_bound`]
//!   after the last fault healed (22.8 s with the default timing, 9.5 s with the 3 s
//!   profile, 9.4 s with quick-restart: lease expiry plus activation; the terms are itemized there) to the end of the run (at least 20 s later); with
//!   a persistent fault, from at most [`check::persistent_fault_bound`] after the later of the
//!   fault's start and that (43.9 s, 23.9 s and 23.8 s more; [`check::liveness_deadline`]). When the
//!   persistent fault's replica cannot give the lead away (its node cannot be read and its
//!   fence cannot succeed), it must instead lead and report itself stuck (`/status`'s
//!   `stuck`) over that span.
//! - **During a persistent fault** on the leader's replica: from the persistent bound after
//!   its start (counted from the liveness bound after earlier faults healed, if later) until
//!   the next transient fault, another node is active at every instant when the replica can
//!   prove its node standby (a read, or a fence that can succeed); or else, at every sample
//!   of `/status` (every 100 ms), the replica reports itself stuck if it leads, and another
//!   node is active if it does not.
//! - **Stability**: leadership changes hands (a node other than the last one active becomes
//!   active) at most (number of faults + 1) times.
//! - **Fence discipline**: a fence runs only when the node's admin endpoint failed or the node
//!   restarted in the lease TTL before it. With a healthy node, standby is confirmed before
//!   the lease deadline (`margin_covers_standby_confirmation`); a fence then means the margin
//!   is wrong, even if nothing overlapped. This is how the core's `no_safety_margin` mutation
//!   shows: it never yields two active nodes (the activation delay still covers the late
//!   step-down), but it fences healthy nodes.
//!
//! A run that broke a documented assumption (drift or restart beyond the bound, a
//! misconfigured active start, or a fence that did not stop a node when its elector, cut off
//! from etcd with the node's admin endpoint failing, lost its lease by expiry, or a leader
//! that etcd's early revocation caught cut off had to fence because its node's admin endpoint
//! failed: the activation delay does not cover that, docs/safety.md says why) is reported as
//! *assumption broken*, by kind, never as a pass, whatever happened in it. A lease given away
//! (deleted or revoked by its elector) never counts as lost: the core must not give it away
//! before its node is proven standby.
//!
//! ## Running it
//!
//! - `make sim-ci` (part of `make test`): the CI seed set, 1,000 seeds at a 10 ms step in
//!   the release binary. `cargo test -p elector-sim`: determinism, the five planted bugs of
//!   the core (`elector-core` feature `mutation`) being found, and a persistent fault checked
//!   both ways (taken over, or reported stuck).
//! - `cargo run -p elector-sim --release -- --seeds 100000`: a long search on every core, with
//!   a progress line and a summary (runs, passes, assumption-broken runs by kind, violations
//!   with their seeds, simulated seconds per wall second).
//! - `cargo run -p elector-sim --release -- --seed S --trace`: replays one seed and prints its
//!   schedule and timeline (faults, every role change with its reason, node commands and
//!   mode changes, fences) and its verdict; `--verbose` adds the electors' failure warnings.
//!   Every failure prints this command.
//! - Options: `--profile default|fast|quick-restart|mixed`, `--replicas N`, `--mutation
//!   no-safety-margin|resign-before-standby-confirmed|resign-when-fence-starts|exclusion-skips-proof|short-activation-delay`,
//!   `--no-break`
//!   (keep every assumption: no drift or restart beyond the bound, a fence that succeeds),
//!   `--threads N`, `--stop-at-first`, `--verify-determinism`, `--tick-ms`, `--min-duration`,
//!   `--require-passes PERCENT` (fail when fewer runs kept every assumption).
//!
//! ## Not simulated
//!
//! Multi-member etcd (leader changes, stale members), message loss other than partitions,
//! corruption or duplication, a whole host (elector and node together) freezing, a node that
//! drains slower than `drain_bound`, a late admin call taking effect after it timed out (the
//! node is local), wall-clock jumps (the elector uses only monotonic time), the real fence
//! command (its outcomes are modeled), a fence that reports success without stopping the node
//! (the fence's documented meaning, never broken here), systemd killing an elector that does
//! not exit within `TimeoutStopSec`, the status server and the command line. See
//! `docs/safety.md`.

pub mod check;
pub mod etcd_model;
pub mod host;
pub mod judge;
pub mod render;
pub mod rng;
pub mod run;
pub mod schedule;
pub mod search;
pub mod trace;
pub mod transport;
pub mod verdict;
pub mod world;
