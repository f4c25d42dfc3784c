//! Go's `sync.RWMutex`, as `rollDPoSCtx.mutex` uses it: writer-preferring. A reader gets the
//! lock only while no writer holds it or waits for it; writers take it one after the other in
//! the order they asked; when a writer lets go, every reader that waited meanwhile gets it
//! before the next writer. This ordering is what makes a read of `/ha` wait behind a pending
//! `activate=false`, and an abandoned admin call still land, in order, later.

use std::collections::VecDeque;

/// Who waits for or holds the lock.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Holder {
    /// The consensus FSM's goroutine (a `prepare()` in progress).
    Fsm,
    /// An admin request, by ticket.
    Request(u64),
    /// The p2p goroutine delivering a consensus message (`HandleConsensusMsg` reads `Active()`).
    Delivery(u64),
}

#[derive(Clone, Debug, Default)]
pub(super) struct RwLock {
    readers: Vec<Holder>,
    writer: Option<Holder>,
    waiting_writers: VecDeque<Holder>,
    waiting_readers: Vec<Holder>,
}

impl RwLock {
    /// `RLock`: true if granted now; otherwise `holder` waits and is returned by a later
    /// [`RwLock::read_unlock`] or [`RwLock::unlock`].
    pub(super) fn read_lock(&mut self, holder: Holder) -> bool {
        if self.waiting_readers.contains(&holder) {
            return false;
        }
        if self.writer.is_some() || !self.waiting_writers.is_empty() {
            self.waiting_readers.push(holder);
            return false;
        }
        self.readers.push(holder);
        true
    }

    /// `Lock`: true if granted now; otherwise `holder` waits its turn.
    pub(super) fn lock(&mut self, holder: Holder) -> bool {
        if self.waiting_writers.contains(&holder) {
            return false;
        }
        if self.writer.is_some() || !self.readers.is_empty() || !self.waiting_writers.is_empty() {
            self.waiting_writers.push_back(holder);
            return false;
        }
        self.writer = Some(holder);
        true
    }

    /// `RUnlock`: returns the holders granted the lock as a consequence.
    pub(super) fn read_unlock(&mut self, holder: Holder) -> Vec<Holder> {
        if let Some(i) = self.readers.iter().position(|&h| h == holder) {
            self.readers.swap_remove(i);
        }
        self.grant_writer()
    }

    /// `Unlock`: every waiting reader first, then (once they are done) the next writer.
    pub(super) fn unlock(&mut self, holder: Holder) -> Vec<Holder> {
        if self.writer == Some(holder) {
            self.writer = None;
        }
        let readers = std::mem::take(&mut self.waiting_readers);
        self.readers.extend(readers.iter().copied());
        let mut granted = readers;
        granted.extend(self.grant_writer());
        granted
    }

    fn grant_writer(&mut self) -> Vec<Holder> {
        if self.writer.is_none()
            && self.readers.is_empty()
            && let Some(next) = self.waiting_writers.pop_front()
        {
            self.writer = Some(next);
            return vec![next];
        }
        Vec::new()
    }

    /// `holder` holds the lock, for reading or writing.
    pub(super) fn holds(&self, holder: Holder) -> bool {
        self.writer == Some(holder) || self.readers.contains(&holder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiting_writer_blocks_new_readers_and_writers_keep_their_order() {
        let mut lock = RwLock::default();
        assert!(lock.read_lock(Holder::Fsm));
        // activate=false waits for the sleeping prepare; a read waits behind it.
        assert!(!lock.lock(Holder::Request(1)));
        assert!(!lock.read_lock(Holder::Request(2)));
        assert!(!lock.lock(Holder::Request(3)));
        assert_eq!(lock.read_unlock(Holder::Fsm), vec![Holder::Request(1)]);
        // The writer lets go: the waiting reader first, the next writer after it.
        assert_eq!(lock.unlock(Holder::Request(1)), vec![Holder::Request(2)]);
        assert_eq!(
            lock.read_unlock(Holder::Request(2)),
            vec![Holder::Request(3)]
        );
        assert!(lock.holds(Holder::Request(3)));
        assert!(lock.unlock(Holder::Request(3)).is_empty());
        assert!(lock.read_lock(Holder::Fsm));
    }
}
