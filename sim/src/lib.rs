//! # elector-sim: the elector under faults, deterministically
//!
//! Runs the shell's real driver (`elector::driver::Driver`, with the real `elector-core`, the
//! real etcd adapter over etcd-client and the real node adapter) in a [turmoil] world, against
//! a model etcd ([`world::etcd_model`]) and model iotex-core nodes ([`elector_model::node`], read
//! from iotex-core's consensus code and shared with the real-world tests), under faults drawn
//! from a seed, and judges what the nodes signed. Same seed, same run, same timeline.
//!
//! ## The world ([`world`], the elector host in [`world::host`], one run in [`seed::run`])
//!
//! - `etcd`: the model etcd (KV, Lease, Watch over gRPC; leases expire on etcd's own clock
//!   with a 500 ms sweep; a restart keeps the data and resets leases to TTL + 1 s).
//! - `elector-i` (2 to 5 of them): the real driver, connected to etcd through
//!   `Client::from_channel` over a turmoil TCP connector (configured like production: HTTP/2
//!   pings sized from the timing, ping and connect timeouts = the request timeout), to its
//!   node through hyper over turmoil TCP (one connection per call, bounded by `node_timeout`,
//!   `activate=false` by `Timing::standby_call_timeout`). Its clock is
//!   `TokioClock::with_rate(rate)`: each elector's clock runs at its own rate against etcd's.
//!   It keeps its term in a `--state-dir` of its own (a temporary directory per run), which a
//!   crash leaves behind and a restart reads (rule `end_dead_term`). The fence is modeled,
//!   with an outcome drawn per scenario: absent (fails at once), fails, times out (after the
//!   10 s `--fence-timeout`), succeeds late (1 to 10 s) or succeeds (within 300 ms). A run
//!   that reports success has restarted the node in standby before it reports; a run that
//!   fails leaves the node as it is.
//! - `node-i`: iotex-core as the elector meets it ([`elector_model::node::NodeModel`]): `/ha`
//!   (port 9009) and the probes (port 8080) over the consensus FSM, its writer-preferring lock
//!   and every signature it makes. One [`elector_model::chain::Chain`] for every node (Wake
//!   timing, 2.5 s slots, genesis at the start of the run): our delegate proposes every slot
//!   (the worst case), or one in 24 (mainnet) in a fifth of the runs. Each node gets the
//!   network's blocks 50 to 300 ms late. A request is handed to the model and answered when
//!   the model answers it (iotex-core holds `activate=false` until the slot in progress starts,
//!   and reads behind it); the node host's clock task advances the model to each of its
//!   wake-ups; a request whose client gave up is abandoned and still lands. Readiness is the
//!   model's, evaluated per block. Nodes start configured standby.
//! - The supervisor (systemd) is modeled by the world loop: when an elector exits or dies, its
//!   host runs `ExecStopPost=` after a drawn delay: the shell's own `elector force-standby`
//!   ([`elector::standby::ForceStandby`]) over the simulated network, with the elector's
//!   settings (activate=false, a confirming read, the remembered term ended in etcd, the fence
//!   if standby is not confirmed within 10 s); the elector is restarted only once it finished.
//!
//! turmoil steps every host by one tick (5 ms by default) at a time; each host's tokio clock
//! is paused and advanced exactly, so timers fire at their instants, while network messages are
//! delivered at step boundaries. Time stamps are turmoil's global simulated time, which is
//! also the nodes' wall clock. turmoil's TCP does not retransmit: a partition that drops a
//! segment leaves the connection silently dead until an HTTP/2 ping notices (real TCP would
//! often recover from a short partition), which is why the liveness bound is longer than TTL +
//! activation delay.
//!
//! ## Determinism
//!
//! A seed fixes the schedule ([`seed::rng`], SplitMix64), turmoil's random numbers (latencies) and
//! the model etcd's lease ids; the node model is deterministic. Three sources of run-to-run
//! variation had to go: tokio's `select!` picks a random branch when several are ready (the
//! shell's loops now say `biased;`); tokio's `watch` channel wakes its waiters in a random
//! order (the model etcd wakes its streams through a FIFO `Notify` instead); and a crashed
//! runtime drops its tasks in an order that depends on process-wide task ids, each dropped
//! connection drawing a latency for its FIN (crashes and restarts happen with zero latency on
//! the host's links, so every draw gives the same value). The state directories' paths differ
//! from run to run, but only their files' names reach the timeline. `--verify-determinism`
//! runs every seed twice in one process and compares the timelines; a test does the same for
//! one seed.
//!
//! ## Faults ([`seed::schedule`])
//!
//! Drawn from the seed: partitions elector-etcd (both ways, one way each way; one elector or
//! all), hold/release delay spikes, latency rises, etcd crash and restart, elector crash and
//! restart (`ExecStopPost` within `restart_bound`, or late or never), SIGTERM (clean handover)
//! and restart, handover requests, an operator's exclusion of one replica and its inclusion
//! (`elector exclude`/`include`, in 35 % of runs, from its own stream), node restarts (standby
//! start; misconfigured active start), readiness flaps, admin faults (500, garbage body,
//! hang), one node getting its blocks 1 to 6 s late for a while (in 25 % of runs: a lagging
//! replica computes its height and round from an older block), etcd revoking every lease early
//! right after renewing the leader's while the leader is cut off (etcd before 3.4.31 does so
//! when a stalled raft leader resumes; in 25 % of runs, from its own stream; rule
//! `activation_delay_covers_early_revocation`), in half of those with the cut-off leader's
//! elector then crashing or hanging before its step-down deadline (its `ExecStopPost`
//! commanding standby within `restart_bound`), and per-elector clock rates within
//! `max_clock_drift` (sometimes beyond). Faults on one resource never overlap; every such fault
//! heals; no fault starts after 70 s. In 30 % of the runs a node fault also *persists* to the
//! end, from a time between 5 and 60 s, on the node active then (the leader's): the node dies
//! for good; or its `/ha` breaks for good (500, garbage, hang) while it keeps signing, and
//! sometimes its elector then gets a SIGTERM it is left with (never killed); or the node
//! restarts and refuses `activate=true` from then on. Half of those runs have no transient
//! fault after it.
//!
//! ## Verdicts ([`checker`]: [`checker::check`], [`checker::judge`], [`checker::verdict::Outcome`], rendered by [`seed::render`])
//!
//! - **Safety, the property**: no height and round is signed by two replicas with the operator
//!   key ([`elector_model::history::double_signs`] over every signature of every node, across
//!   its process's restarts); and, as a second check, at no instant are two nodes active
//!   ([`elector_model::history::dual_active`] on the modes a read would report). A double
//!   sign is a signature-level failure no mode read shows: iotex-core signs a slot's proposal
//!   before it checks whether it is active and broadcasts it after `activate=false` was
//!   accepted.
//! - **Liveness**: exactly one node is active, alone, from at most [`check::liveness_bound`]
//!   after the last fault healed (27.9 s with the default timing, 22.4 s with the 7 s fast
//!   profile, 21.4 s with quick-restart; the terms are itemized there) to the end of the run
//!   (at least 20 s later); with a persistent fault, from at most
//!   [`check::persistent_fault_bound`] after the later of the fault's start and that (48.8 s,
//!   36.3 s and 35.3 s more; [`checker::check::liveness_deadline`]). When the persistent fault's
//!   replica cannot give the lead away (its node cannot be read and its fence cannot succeed),
//!   it must instead lead and report itself stuck (`/status`'s `stuck`) over that span.
//! - **During a persistent fault** on the leader's replica: from the persistent bound after
//!   its start (counted from the liveness bound after earlier faults healed, if later) until
//!   the next transient fault, another node is active at every instant when the replica can
//!   prove its node standby (a read, or a fence that can succeed); or else, at every sample
//!   of `/status` (every 100 ms), the replica reports itself stuck if it leads, and another
//!   node is active if it does not.
//! - **Stability**: leadership changes hands (a node other than the last one active becomes
//!   active) at most (number of faults + 1) times.
//! - **Fence discipline**: a fence runs only when the node's admin endpoint failed or the node
//!   restarted in the lease TTL before it.
//!
//! A run that broke a documented assumption (drift or restart beyond the bound, a late or
//! missing `ExecStopPost`, a misconfigured active start, a fence that did not stop a node when
//! its elector, cut off from etcd with the node's admin endpoint failing, lost its lease by
//! expiry, or a leader that etcd's early revocation caught cut off had to fence because its
//! node's admin endpoint failed: the activation delay does not cover that, docs/safety.md says
//! why) is reported as *assumption broken*, by kind, never as a pass. Each broken assumption
//! names its replica and when it broke; it explains the double signs and overlaps of that
//! replica from then on, and only those: any other is a violation even in such a run. A lease
//! given away (deleted or revoked by its elector) never counts as lost: the core must not give
//! it away before its node is proven standby.
//!
//! ## Running it
//!
//! - `make sim-ci` (part of `make test`): the CI seed set, 1,000 seeds at a 10 ms step in
//!   the release binary. `cargo test -p elector-sim`: determinism, the core's planted bugs
//!   (`elector-core` feature `mutation`) being found by a double sign with a control run of
//!   the same seeds without them, and a persistent fault checked both ways (taken over, or
//!   reported stuck).
//! - `cargo run -p elector-sim --release -- --seeds 100000`: a long search on every core, with
//!   a progress line and a summary (runs, passes, assumption-broken runs by kind with their
//!   double signs, violations with their seeds, the slowest recoveries against the bounds, the
//!   longest drain, simulated seconds per wall second).
//! - `cargo run -p elector-sim --release -- --seed S --trace`: replays one seed and prints its
//!   schedule and timeline (faults, every role change with its reason, node commands and
//!   mode changes, fences, `ExecStopPost` runs, every signature within seconds of a double
//!   sign or an overlap, double-signed ones marked), the spans of heights each node signed,
//!   and its verdict; `--verbose` adds the electors' failure warnings. Every failure prints
//!   this command.
//! - Options: `--profile default|fast|quick-restart|long-lease|mixed`, `--replicas N`,
//!   `--mutation no-safety-margin|resign-before-standby-confirmed|resign-when-fence-starts|exclusion-skips-proof|short-activation-delay|handover-skips-slot-wait|resign-before-key-withdrawal-confirmed|install-key-before-gate`,
//!   `--custody on|off|mixed` (key custody on every replica, none, or half the seeds),
//!   `--no-break` (keep every assumption: no drift or restart beyond the bound, a fence that
//!   succeeds), `--threads N`, `--stop-at-first`, `--verify-determinism`, `--tick-ms`,
//!   `--min-duration`, `--require-passes PERCENT` (fail when fewer runs kept every
//!   assumption).
//!
//! ## Not simulated
//!
//! Multi-member etcd (leader changes, stale members), message loss other than partitions,
//! corruption or duplication, a whole host (elector and node together) freezing, a hung
//! elector that still runs (a hang is its watchdog's kill), the other delegates (the chain
//! commits a block every slot whatever our replicas sign; no failed slots are drawn), wall
//! clocks that differ between nodes (`max_clock_offset`), the real fence command (its
//! outcomes are modeled), a fence that reports success without stopping the node (the fence's
//! documented meaning, never broken here), systemd killing an elector that does not exit
//! within `TimeoutStopSec`, the status server and the command line. The node's drain in the
//! runs stays near one slot (about 2 s, reported as the longest drain) against the 5.1 s
//! `drain_bound` the rules assume: the elector never sends `activate=true` to a node that is
//! already active, which is what queues the extra prepare of iotex-core's worst case. See
//! `docs/safety.md`.

pub mod checker;
pub mod seed;
pub mod world;
