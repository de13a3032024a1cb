//! The rules decided at once, without asking anyone: address lists and
//! names. Pure functions of the request, so they are tested here.

use std::net::IpAddr;

use tincan_core::event::Denial;
use tincan_core::ipnet::IpNet;

use super::args::AccessArgs;

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Connect,
    Publish,
    Play,
}

impl Action {
    /// As the hook's JSON names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Connect => "connect",
            Action::Publish => "publish",
            Action::Play => "play",
        }
    }
}

/// The access rules of one App (or the server-wide ones).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub args: AccessArgs,
}

/// An allow-list (empty: everyone) and a deny-list.
fn listed(allow: &[IpNet], deny: &[IpNet], ip: Option<IpAddr>) -> bool {
    match ip {
        // A connection without a known peer (a tap, a source) is the
        // embedder's own: lists do not apply.
        None => true,
        Some(ip) => {
            (allow.is_empty() || IpNet::any_contains(allow, ip)) && !IpNet::any_contains(deny, ip)
        }
    }
}

/// Whether `name` is a Go RTMP server's CHANNEL or KEY.
pub fn strict_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Policy {
    /// Whether any rule of this policy needs a decision for `action`.
    pub fn decides(&self, action: Action) -> bool {
        let a = &self.args;
        let names = a.strict_names || a.max_name_length > 0;
        match action {
            Action::Connect => !a.allow_connect.is_empty() || !a.deny_connect.is_empty() || names,
            Action::Publish => {
                !a.allow_publish.is_empty()
                    || !a.deny_publish.is_empty()
                    || names
                    || a.channel_keys
                    || a.callback_url.is_some()
            }
            Action::Play => {
                !a.allow_play.is_empty() || !a.deny_play.is_empty() || names || a.channel_keys
            }
        }
    }

    /// The address rule: `Some(denial)` if `ip` may not do `action`.
    /// Connect lists apply to every request (a connection refused at
    /// connect never gets further).
    pub fn address(&self, action: Action, ip: Option<IpAddr>) -> Option<Denial> {
        let a = &self.args;
        let (allow, deny, what) = match action {
            Action::Connect => (&a.allow_connect, &a.deny_connect, "connect"),
            Action::Publish => (&a.allow_publish, &a.deny_publish, "publish"),
            Action::Play => (&a.allow_play, &a.deny_play, "play"),
        };
        (!listed(allow, deny, ip)).then(|| {
            Denial::policy(&format!(
                "your address ({}) is not allowed to {what} here",
                ip.map_or_else(String::new, |ip| ip.to_string())
            ))
        })
    }

    /// The name rule for an App (`what` = "channel") or a stream name
    /// ("stream key").
    pub fn name(&self, what: &str, name: &str) -> Option<Denial> {
        let a = &self.args;
        if a.strict_names && !strict_name(name) {
            return Some(Denial::bad_name(&format!(
                "invalid {what} {name:?}: only letters A-Z a-z, digits 0-9, - and _ are allowed"
            )));
        }
        let max = usize::try_from(a.max_name_length).unwrap_or(usize::MAX);
        if max > 0 && name.chars().count() > max {
            return Some(Denial::bad_name(&format!(
                "invalid {what}: longer than {max} characters"
            )));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tincan_core::event::DenialKind;

    fn policy(f: impl FnOnce(&mut AccessArgs)) -> Policy {
        let mut args = AccessArgs::default();
        f(&mut args);
        Policy { args }
    }

    #[test]
    fn lists_take_addresses_and_subnets_of_both_families() {
        let p = policy(|a| {
            a.allow_play = IpNet::parse_list("127.0.0.2,10.0.0.0/8,::1").unwrap();
            a.deny_play = IpNet::parse_list("10.9.0.0/16").unwrap();
        });
        let ip = |s: &str| Some(s.parse().unwrap());
        assert!(p.address(Action::Play, ip("127.0.0.2")).is_none());
        assert!(p.address(Action::Play, ip("10.1.2.3")).is_none());
        assert!(p.address(Action::Play, ip("::1")).is_none());
        assert!(p.address(Action::Play, ip("::ffff:10.1.2.3")).is_none());
        let d = p.address(Action::Play, ip("127.0.0.3")).unwrap();
        assert_eq!(d.kind, DenialKind::Policy);
        assert!(d.description.contains("not allowed to play"));
        assert!(p.address(Action::Play, ip("10.9.1.1")).is_some());
        // Publishing is unaffected by play lists.
        assert!(p.address(Action::Publish, ip("127.0.0.3")).is_none());
        assert!(p.decides(Action::Play));
        assert!(!p.decides(Action::Publish));
        assert!(!p.decides(Action::Connect));
    }

    #[test]
    fn names_as_the_go_server_has_them() {
        let p = policy(|a| {
            a.strict_names = true;
            a.max_name_length = 4;
        });
        assert!(p.name("channel", "ab-_").is_none());
        assert!(p.name("channel", "abcde").is_some());
        for bad in ["", "a b", "a.b", "é", "a/b", "a?b"] {
            let d = p.name("stream key", bad).unwrap();
            assert_eq!(d.kind, DenialKind::BadName, "{bad:?}");
        }
        assert!(policy(|_| {}).name("x", "any thing/é").is_none());
    }
}
