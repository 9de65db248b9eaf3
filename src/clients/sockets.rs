//! `--max-sockets-per-client`: how many viewer sockets one client holds open on this node.
//! One script on one machine must not be an audience; a carrier's NAT full of real people
//! may be, which is why the default is high (docs/operations.md, "Limits"). The same count
//! bounds TLS handshakes in progress per TCP peer (`--tls-handshakes-per-peer`, `tls`).

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use super::ClientKey;

/// Open viewer sockets per client. Only clients with an open socket have an entry, so the
/// map never outgrows the node's sockets. One lock, held for a hash lookup twice per
/// socket (open and close): nothing next to the store round trip of a connect.
#[derive(Debug)]
pub struct SocketsPerClient {
    max: usize,
    open: Mutex<HashMap<ClientKey, usize>>,
}

/// One counted socket of a client, given back when dropped.
#[derive(Debug)]
pub struct ClientSocket {
    counts: Arc<SocketsPerClient>,
    key: ClientKey,
}

impl SocketsPerClient {
    pub fn new(max: NonZeroUsize) -> Self {
        Self {
            max: max.get(),
            open: Mutex::new(HashMap::new()),
        }
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<ClientKey, usize>> {
        // A panic under this lock leaves the counts consistent (every change is one
        // statement), so a poisoned lock is still good.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True when `key` holds its limit: a new socket would be refused.
    pub fn is_full(&self, key: &ClientKey) -> bool {
        self.open().get(key).is_some_and(|&n| n >= self.max)
    }

    /// Counts one more socket of `key`, or `None` at its limit.
    pub fn try_take(self: &Arc<Self>, key: ClientKey) -> Option<ClientSocket> {
        let mut open = self.open();
        let n = open.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ClientSocket {
            counts: self.clone(),
            key,
        })
    }

    /// Sockets `key` holds now.
    pub fn of(&self, key: &ClientKey) -> usize {
        self.open().get(key).copied().unwrap_or(0)
    }

    /// Clients with at least one socket.
    pub fn clients(&self) -> usize {
        self.open().len()
    }
}

impl Drop for ClientSocket {
    fn drop(&mut self) {
        let mut open = self.counts.open();
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::key;

    #[test]
    fn the_limit_is_per_client_and_a_closed_socket_makes_room() {
        let counts = Arc::new(SocketsPerClient::new(NonZeroUsize::new(2).unwrap()));
        let a = key("198.51.100.1");
        let first = counts.try_take(a).unwrap();
        let _second = counts.try_take(a).unwrap();
        assert!(counts.is_full(&a));
        assert!(counts.try_take(a).is_none());
        assert_eq!(counts.of(&a), 2, "a refusal counts nothing");
        let _other = counts.try_take(key("198.51.100.2")).unwrap();
        drop(first);
        assert!(!counts.is_full(&a));
        let _again = counts.try_take(a).unwrap();
        assert_eq!(counts.of(&a), 2);
    }

    #[test]
    fn clients_without_sockets_are_forgotten() {
        let counts = Arc::new(SocketsPerClient::new(NonZeroUsize::new(5).unwrap()));
        let held: Vec<_> = (1..=100)
            .map(|i| counts.try_take(key(&format!("198.51.100.{i}"))).unwrap())
            .collect();
        assert_eq!(counts.clients(), 100);
        drop(held);
        assert_eq!(counts.clients(), 0);
        // Refused at the limit leaves no entry behind either.
        let one = Arc::new(SocketsPerClient::new(NonZeroUsize::MIN));
        let _held = one.try_take(key("198.51.100.1")).unwrap();
        assert!(one.try_take(key("198.51.100.1")).is_none());
        assert_eq!(one.clients(), 1);
    }
}
