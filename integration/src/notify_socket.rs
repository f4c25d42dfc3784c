//! systemd's notify socket, as the tests stand in for systemd: what an elector sent on it.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// What arrived on `socket`, with arrival times, until `until` holds or `bound` passed.
pub fn receive(
    socket: &UnixDatagram,
    bound: Duration,
    mut until: impl FnMut(&[(Instant, String)]) -> bool,
) -> Vec<(Instant, String)> {
    let deadline = Instant::now() + bound;
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("a read timeout");
    while Instant::now() < deadline && !until(&received) {
        if let Ok(n) = socket.recv(&mut buffer) {
            received.push((
                Instant::now(),
                String::from_utf8_lossy(&buffer[..n]).into_owned(),
            ));
        }
    }
    received
}
