//! Caps on visitors' live sockets in this process: per client address, sockets still waiting
//! for their authentication frame (all clients together), and per chat, where a new socket
//! closes the chat's oldest instead of being refused (the newest tab is the one in use).

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::{Arc, Mutex},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::{
    config::LiveLimits,
    http::error::{ApiError, ErrorCode},
};

/// The live sockets of one process.
#[derive(Debug)]
pub struct LiveSockets {
    limits: LiveLimits,
    pending: Arc<Semaphore>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    per_address: HashMap<IpAddr, usize>,
    /// Oldest first.
    per_chat: HashMap<String, VecDeque<(u64, CancellationToken)>>,
}

/// A socket admitted before its upgrade: it counts for its address until dropped, and holds a
/// pending place until [`Admitted::authenticated`].
#[derive(Debug)]
pub struct Admitted {
    address: AddressPlace,
    pending: Option<OwnedSemaphorePermit>,
}

impl Admitted {
    /// The socket sent its authentication frame (right or wrong): it no longer waits.
    pub fn authenticated(&mut self) {
        self.pending = None;
    }

    /// The socket joins its chat; the chat's oldest socket is told to go when there are more
    /// than the cap.
    pub fn join(&self, chat_id: &str) -> ChatPlace {
        let owner = &self.address.owner;
        let replaced = CancellationToken::new();
        let mut inner = owner.inner.lock().expect("not poisoned");
        inner.next_id += 1;
        let id = inner.next_id;
        let sockets = inner.per_chat.entry(chat_id.to_owned()).or_default();
        sockets.push_back((id, replaced.clone()));
        while sockets.len() > owner.limits.per_chat {
            if let Some((_, oldest)) = sockets.pop_front() {
                oldest.cancel();
            }
        }
        ChatPlace {
            owner: owner.clone(),
            chat_id: chat_id.to_owned(),
            id,
            replaced,
        }
    }
}

#[derive(Debug)]
struct AddressPlace {
    owner: Arc<LiveSockets>,
    key: IpAddr,
}

impl Drop for AddressPlace {
    fn drop(&mut self) {
        let mut inner = self.owner.inner.lock().expect("not poisoned");
        if let Some(n) = inner.per_address.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                inner.per_address.remove(&self.key);
            }
        }
    }
}

/// A socket's place among its chat's sockets.
#[derive(Debug)]
pub struct ChatPlace {
    owner: Arc<LiveSockets>,
    chat_id: String,
    id: u64,
    /// Cancelled when newer sockets of the chat pushed this one out.
    pub replaced: CancellationToken,
}

impl Drop for ChatPlace {
    fn drop(&mut self) {
        let mut inner = self.owner.inner.lock().expect("not poisoned");
        if let Some(sockets) = inner.per_chat.get_mut(&self.chat_id) {
            sockets.retain(|(id, _)| *id != self.id);
            if sockets.is_empty() {
                inner.per_chat.remove(&self.chat_id);
            }
        }
    }
}

impl LiveSockets {
    pub fn new(limits: LiveLimits) -> Arc<Self> {
        Arc::new(Self {
            pending: Arc::new(Semaphore::new(limits.pending)),
            limits,
            inner: Mutex::default(),
        })
    }

    /// Admits a new socket from `ip`, or refuses it: `429 too_many_sockets` when the address
    /// holds its share, `503 too_many_pending` when too many sockets wait to authenticate.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, ApiError> {
        let key = address_key(ip);
        let address = {
            let mut inner = self.inner.lock().expect("not poisoned");
            let n = inner.per_address.entry(key).or_default();
            if *n >= self.limits.per_address {
                return Err(ApiError::new(
                    ErrorCode::TooManySockets,
                    "too many live connections from this address; close some tabs",
                ));
            }
            *n += 1;
            AddressPlace {
                owner: self.clone(),
                key,
            }
        };
        let pending = self.pending.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                ErrorCode::TooManyPending,
                "the server is busy; please reconnect in a moment",
            )
        })?;
        Ok(Admitted {
            address,
            pending: Some(pending),
        })
    }
}

/// The key an address is counted under: an IPv4 address, or the /64 of an IPv6 address (one
/// subscriber usually holds a whole /64, so counting single addresses would count nothing).
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sockets(per_chat: usize, per_address: usize, pending: usize) -> Arc<LiveSockets> {
        LiveSockets::new(LiveLimits {
            per_chat,
            per_address,
            pending,
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_holds_its_share_and_gets_it_back() {
        let s = sockets(8, 2, 100);
        let a = s.admit(ip("192.0.2.1")).unwrap();
        let _b = s.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(
            s.admit(ip("192.0.2.1")).unwrap_err().code,
            ErrorCode::TooManySockets
        );
        assert!(s.admit(ip("192.0.2.2")).is_ok(), "another address");
        drop(a);
        assert!(s.admit(ip("192.0.2.1")).is_ok());
    }

    #[test]
    fn ipv6_addresses_count_per_64() {
        let s = sockets(8, 1, 100);
        let _a = s.admit(ip("2001:db8:1:2::1")).unwrap();
        assert!(s.admit(ip("2001:db8:1:2:ffff::9")).is_err());
        assert!(s.admit(ip("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn pending_places_are_given_back_on_authentication() {
        let s = sockets(8, 100, 1);
        let mut a = s.admit(ip("192.0.2.1")).unwrap();
        let refused = s.admit(ip("192.0.2.2")).unwrap_err();
        assert_eq!(refused.code, ErrorCode::TooManyPending);
        a.authenticated();
        assert!(s.admit(ip("192.0.2.2")).is_ok());
        // The refused socket did not keep its address place either.
        assert!(s.inner.lock().unwrap().per_address.len() <= 2);
    }

    #[test]
    fn a_new_socket_of_a_full_chat_pushes_the_oldest_out() {
        let s = sockets(2, 100, 100);
        let admitted: Vec<Admitted> = (0..3).map(|_| s.admit(ip("192.0.2.1")).unwrap()).collect();
        let first = admitted[0].join("chat");
        let second = admitted[1].join("chat");
        let other = admitted[2].join("other chat");
        assert!(!first.replaced.is_cancelled());
        let third = admitted[2].join("chat");
        assert!(first.replaced.is_cancelled());
        assert!(!second.replaced.is_cancelled() && !third.replaced.is_cancelled());
        assert!(!other.replaced.is_cancelled());
        drop((first, second, third, other));
        assert!(s.inner.lock().unwrap().per_chat.is_empty());
    }
}
