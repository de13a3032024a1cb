//! Relay loop prevention: every relay connection says which servers the
//! stream it carries has passed through, and a server refuses one whose
//! chain already names it.
//!
//! A relay's `connect` carries the chain as the command object member
//! [`VIA_PROPERTY`], a strict array of node ids, oldest first (the
//! [`crate::client::ClientConfig::via`] of an outbound connection: the
//! chain its stream arrived with, plus the dialing server's own id).
//! A server with a node id ([`LoopGuard::node_id`]) refuses with
//! `NetConnection.Connect.Rejected` a `connect` whose chain names it (a
//! push A → B → A, or a pull edge asking an origin that pulls from that
//! edge), and any chain of [`LoopGuard::hop_limit`] ids or more, a
//! backstop for loops through servers that do not forward the chain.
//! Clients that are not relays send no chain and are never refused by it.

use crate::amf::amf0::Value;

/// The `connect` member that carries the chain.
pub const VIA_PROPERTY: &str = "tincanVia";

/// Longest node id kept from a peer's chain (ids are short names).
const MAX_ID_LEN: usize = 256;

/// Most ids read from a peer's chain: past the hop limit it is refused
/// anyway.
const MAX_CHAIN: usize = 64;

/// A server's identity and bound for relay chains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopGuard {
    /// This server's node id; `None` checks only the hop limit.
    pub node_id: Option<String>,
    /// A chain of this many servers or more is refused.
    pub hop_limit: usize,
}

impl Default for LoopGuard {
    /// No node id, and a hop limit of 8: deeper relay trees than origin,
    /// a few tiers of edges and a restream are rare.
    fn default() -> Self {
        LoopGuard {
            node_id: None,
            hop_limit: 8,
        }
    }
}

/// Why a relay's `connect` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoopRefusal {
    /// The chain names this server: the stream would go round.
    Loop(String),
    /// The chain is at the hop limit.
    TooManyHops(usize),
}

impl std::fmt::Display for LoopRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoopRefusal::Loop(node) => write!(
                f,
                "relay loop: the stream already passed through this server ({node})"
            ),
            LoopRefusal::TooManyHops(n) => {
                write!(
                    f,
                    "relay loop: the stream passed through {n} servers, the hop limit"
                )
            }
        }
    }
}

/// The chain a `connect` command object carries (empty for a client that
/// is not a relay). Entries that are not strings are skipped; the chain
/// is cut at 64 ids of 256 bytes.
pub fn chain(command_object: &Value) -> Vec<String> {
    let Some(list) = command_object.get(VIA_PROPERTY) else {
        return Vec::new();
    };
    let items: &[Value] = match list {
        Value::StrictArray(items) => items,
        _ => return Vec::new(),
    };
    items
        .iter()
        .filter_map(Value::as_str)
        .take(MAX_CHAIN)
        .map(|s| s.chars().take(MAX_ID_LEN).collect())
        .collect()
}

impl LoopGuard {
    /// Whether a `connect` with `chain` may proceed.
    pub fn check(&self, chain: &[String]) -> Result<(), LoopRefusal> {
        if let Some(me) = &self.node_id {
            if chain.iter().any(|id| id == me) {
                return Err(LoopRefusal::Loop(me.clone()));
            }
        }
        if !chain.is_empty() && chain.len() >= self.hop_limit {
            return Err(LoopRefusal::TooManyHops(chain.len()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(via: Vec<Value>) -> Value {
        Value::object([
            ("app", Value::from("live")),
            (VIA_PROPERTY, Value::StrictArray(via)),
        ])
    }

    #[test]
    fn a_chain_that_names_this_server_is_a_loop() {
        let guard = LoopGuard {
            node_id: Some("a".into()),
            hop_limit: 8,
        };
        let c = chain(&object(vec![Value::from("a"), Value::from("b")]));
        assert_eq!(guard.check(&c), Err(LoopRefusal::Loop("a".into())));
        let c = chain(&object(vec![Value::from("b")]));
        assert_eq!(guard.check(&c), Ok(()));
    }

    #[test]
    fn a_chain_at_the_hop_limit_is_refused_even_without_a_node_id() {
        let guard = LoopGuard {
            node_id: None,
            hop_limit: 3,
        };
        let ids = |n| (0..n).map(|i| Value::from(format!("n{i}"))).collect();
        assert_eq!(guard.check(&chain(&object(ids(2)))), Ok(()));
        assert_eq!(
            guard.check(&chain(&object(ids(3)))),
            Err(LoopRefusal::TooManyHops(3))
        );
    }

    #[test]
    fn a_client_without_a_chain_is_never_refused() {
        let guard = LoopGuard {
            node_id: Some("a".into()),
            hop_limit: 1,
        };
        let c = chain(&Value::object([("app", Value::from("live"))]));
        assert!(c.is_empty());
        assert_eq!(guard.check(&c), Ok(()));
    }

    #[test]
    fn a_peer_cannot_make_the_chain_large() {
        let long = "x".repeat(10_000);
        let c = chain(&object(vec![Value::from(long.as_str()); 1000]));
        assert_eq!(c.len(), MAX_CHAIN);
        assert!(c.iter().all(|id| id.len() == MAX_ID_LEN));
    }
}
