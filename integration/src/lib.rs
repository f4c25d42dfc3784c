/// `elector_core::Timing::fast_profile()` as flags: the 3 s lease profile of docs/safety.md
/// (nodes that drain within 700 ms). The elector derives the activation delay from them; the
/// `fast_profile_args_give_the_fast_profile` test keeps the two in step.
pub const FAST_PROFILE_ARGS: [&str; 9] = [
    "--ttl=3s",
    "--keepalive-interval=300ms",
    "--etcd-timeout=300ms",
    "--drain-bound=700ms",
    "--safety-margin=500ms",
    "--node-timeout=150ms",
    "--confirm-poll-interval=100ms",
    "--restart-bound=2s",
    "--node-lost-after=5s",
];

pub mod cluster;
pub mod containers;
pub mod etcd_process;
pub mod operator;
pub mod standin;

#[cfg(test)]
mod tests {
    use super::FAST_PROFILE_ARGS;
    use elector_core::Timing;

    #[test]
    fn fast_profile_args_give_the_fast_profile() {
        let line = std::iter::once("elector").chain(FAST_PROFILE_ARGS);
        let elector::cli::Parsed::Run(cli) = elector::cli::parse(line.map(str::to_owned)) else {
            panic!("FAST_PROFILE_ARGS do not parse");
        };
        assert_eq!(cli.run.timing().unwrap(), Timing::fast_profile());
    }
}
