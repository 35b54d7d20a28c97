//! How many connections (or proxied requests in flight) each client address holds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The count per address, at most `most` each; an address at zero is forgotten.
pub(super) struct Clients {
    most: usize,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One place an address holds; given back when dropped.
pub(super) struct Slot {
    ip: IpAddr,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Clients {
    pub(super) fn new(most: usize) -> Self {
        Clients { most, held: Arc::default() }
    }

    /// A place for `ip`, or `None` when it holds its most.
    pub(super) fn enter(&self, ip: IpAddr) -> Option<Slot> {
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = held.entry(ip).or_default();
        if *count >= self.most {
            return None;
        }
        *count += 1;
        Some(Slot { ip, held: Arc::clone(&self.held) })
    }

    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.held.lock().map_or(0, |held| held.len())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_share_and_is_forgotten_at_zero() {
        let clients = Clients::new(2);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().expect("ip"), "192.0.2.2".parse().expect("ip"));
        let first = clients.enter(a).expect("first");
        let second = clients.enter(a).expect("second");
        assert!(clients.enter(a).is_none(), "a third is refused");
        let other = clients.enter(b).expect("another address is not held back");
        drop(first);
        let third = clients.enter(a).expect("a place given back is free again");
        drop((second, third, other));
        assert_eq!(clients.addresses(), 0, "memory stays bounded by the open connections");
    }
}
