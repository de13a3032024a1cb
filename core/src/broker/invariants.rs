//! A consistency check of the broker's bookkeeping, for fuzz targets and
//! tests: the broker keeps the same facts in several maps (a session's
//! publishes and plays, a stream's publisher and subscribers, App
//! reference counts, grace deadlines), and every mutation must keep them in
//! agreement.

use std::collections::{HashMap, HashSet};

use super::{AppId, Broker};

impl Broker {
    /// Checks that the broker's maps agree with each other: each publisher
    /// and subscriber a stream names is a live session that records it (no
    /// orphaned subscriber of a closed session), each stream has at most one
    /// publisher and its session says so, no idle stream is kept, grace
    /// deadlines match their streams, App reference counts equal members
    /// plus streams, App members and `watch` registrations name connected
    /// sessions only, and the published count is right. Returns the first
    /// disagreement found.
    ///
    /// Linear in the broker's size: meant for fuzzing and tests, not for a
    /// running server.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut published = 0;
        let mut app_refs: HashMap<AppId, usize> = HashMap::new();
        for (key, stream) in &self.streams {
            *app_refs.entry(key.app).or_default() += 1;
            if stream.is_idle() {
                return Err(format!("idle stream {key:?} kept"));
            }
            if let Some(p) = stream.publisher {
                published += 1;
                let recorded = self
                    .sessions
                    .get(&p.session)
                    .and_then(|s| s.publishes.get(&p.stream_id));
                if recorded != Some(key) {
                    return Err(format!(
                        "stream {key:?} names publisher {}/{} which records {recorded:?}",
                        p.session, p.stream_id
                    ));
                }
            }
            let mut seen = HashSet::new();
            for (session, stream_id) in stream.subscriptions() {
                if !seen.insert((session, stream_id)) {
                    return Err(format!("{session}/{stream_id} subscribed twice to {key:?}"));
                }
                let recorded = self
                    .sessions
                    .get(&session)
                    .and_then(|s| s.plays.get(&stream_id))
                    .map(|(k, _)| k);
                if recorded != Some(key) {
                    return Err(format!(
                        "stream {key:?} has subscriber {session}/{stream_id} which records {recorded:?}"
                    ));
                }
            }
            match stream.grace {
                Some(d) if !self.graces.contains(&(d, *key)) => {
                    return Err(format!("grace of {key:?} missing from the deadline set"));
                }
                Some(_) if stream.publisher.is_some() => {
                    return Err(format!("published stream {key:?} in grace"));
                }
                _ => {}
            }
        }
        if published != self.published {
            return Err(format!(
                "published count {} but {published} streams have a publisher",
                self.published
            ));
        }
        for (deadline, key) in &self.graces {
            if self.streams.get(key).and_then(|s| s.grace) != Some(*deadline) {
                return Err(format!("stale grace deadline for {key:?}"));
            }
        }
        for (id, session) in &self.sessions {
            *app_refs.entry(session.app).or_default() += 1;
            for (stream_id, key) in &session.publishes {
                let ok = self
                    .streams
                    .get(key)
                    .is_some_and(|s| s.is_publisher(*id, *stream_id));
                if !ok {
                    return Err(format!(
                        "{id}/{stream_id} records a publish of {key:?} the stream does not know"
                    ));
                }
            }
            for (stream_id, (key, _)) in &session.plays {
                let ok = self
                    .streams
                    .get(key)
                    .is_some_and(|s| s.subscriptions().any(|sub| sub == (*id, *stream_id)));
                if !ok {
                    return Err(format!(
                        "{id}/{stream_id} records a play of {key:?} the stream does not know"
                    ));
                }
            }
        }
        for (connection_id, id) in &self.connections {
            if self.sessions.get(id).map(|s| s.connection_id.as_str()) != Some(connection_id) {
                return Err(format!(
                    "connection id index names {id}, not connected under it"
                ));
            }
        }
        if self.apps.len() != app_refs.len() {
            return Err(format!(
                "{} Apps kept, {} referenced",
                self.apps.len(),
                app_refs.len()
            ));
        }
        for (id, app) in &self.apps {
            let refs = app_refs.get(id).copied().unwrap_or(0);
            if app.refs != refs {
                return Err(format!("App {id} counts {} refs, has {refs}", app.refs));
            }
            if self.app_ids.get(&app.name) != Some(id) {
                return Err(format!("App {id} missing from the name index"));
            }
        }
        if self.app_ids.len() != self.apps.len() {
            return Err("App name index out of step".to_owned());
        }
        for (id, app) in &self.apps {
            for member in &app.members {
                if self.sessions.get(member).map(|s| s.app) != Some(*id) {
                    return Err(format!("{member} listed as a member of App {id}"));
                }
            }
        }
        for (id, session) in &self.sessions {
            let listed = self
                .apps
                .get(&session.app)
                .is_some_and(|a| a.members.contains(id));
            if !listed {
                return Err(format!("{id} missing from its App's members"));
            }
        }
        self.check_watches()
    }

    /// The two watch maps mirror each other, hold no empty sets, and name
    /// only connected sessions (a closed one was forgotten, its watchers
    /// told).
    fn check_watches(&self) -> Result<(), String> {
        let w = &self.watches;
        for (map, other, what) in [
            (&w.watching, &w.watchers, "watching"),
            (&w.watchers, &w.watching, "watchers"),
        ] {
            for (a, set) in map {
                if set.is_empty() {
                    return Err(format!("empty {what} set kept for {a}"));
                }
                for b in std::iter::once(a).chain(set) {
                    if !self.sessions.contains_key(b) {
                        return Err(format!("{what} names {b}, not connected"));
                    }
                }
                for b in set {
                    if !other.get(b).is_some_and(|s| s.contains(a)) {
                        return Err(format!("{what} {a} -> {b} not mirrored"));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::broker::{Broker, BrokerConfig};
    use crate::event::{PlayRequest, SessionEvent, SessionId};
    use crate::message::PublishKind;

    fn connect(b: &mut Broker, now: Instant) -> SessionId {
        let id = b.open_session();
        let event = SessionEvent::Connected(Box::new(crate::event::ConnectInfo {
            app: "live".to_owned(),
            connection_id: format!("c{id}"),
            ..Default::default()
        }));
        b.handle_event(now, id, event);
        id
    }

    fn play(b: &mut Broker, now: Instant, id: SessionId, name: &str) {
        let request = PlayRequest {
            seq: 1,
            name: name.to_owned(),
            query: String::new(),
        };
        b.handle_event(now, id, SessionEvent::Play { stream: 1, request });
    }

    fn publish(b: &mut Broker, now: Instant, id: SessionId, name: &str) {
        let event = SessionEvent::Publish {
            stream: 1,
            name: name.to_owned(),
            kind: PublishKind::Live,
            seq: 1,
            query: String::new(),
            priority: 0,
        };
        b.handle_event(now, id, event);
    }

    #[test]
    fn bookkeeping_agrees_through_publish_play_grace_and_close() {
        let now = crate::testing::test_now();
        let mut b = Broker::new(BrokerConfig::default());
        let publisher = connect(&mut b, now);
        let player = connect(&mut b, now);
        publish(&mut b, now, publisher, "cam");
        play(&mut b, now, player, "cam");
        assert_eq!(b.check_invariants(), Ok(()));
        b.handle_event(now, publisher, SessionEvent::Closed);
        assert_eq!(b.check_invariants(), Ok(()), "player waiting out the grace");
        b.handle_timeout(now + Duration::from_secs(60));
        b.handle_event(now, player, SessionEvent::Closed);
        assert_eq!(b.check_invariants(), Ok(()));
        assert_eq!(b.stream_count(), 0);
    }

    #[test]
    fn bookkeeping_agrees_through_watch_and_close() {
        let now = crate::testing::test_now();
        let mut b = Broker::new(BrokerConfig::default());
        let watcher = connect(&mut b, now);
        let watched = connect(&mut b, now);
        let target = format!("c{watched}");
        b.handle_event(now, watcher, SessionEvent::Watch { target });
        assert_eq!(b.check_invariants(), Ok(()));
        b.handle_event(now, watched, SessionEvent::Closed);
        assert_eq!(b.check_invariants(), Ok(()));
    }

    #[test]
    fn watch_naming_a_forgotten_session_is_reported() {
        let now = crate::testing::test_now();
        let mut b = Broker::new(BrokerConfig::default());
        let watcher = connect(&mut b, now);
        let watched = connect(&mut b, now);
        let target = format!("c{watched}");
        b.handle_event(now, watcher, SessionEvent::Watch { target });
        b.sessions.remove(&watched);
        b.connections.retain(|_, id| *id != watched);
        if let Some(app) = b.apps.values_mut().next() {
            app.members.remove(&watched);
            app.refs -= 1;
        }
        let err = b.check_invariants().unwrap_err();
        assert!(err.starts_with("watch"), "{err}");
    }

    #[test]
    fn subscriber_of_a_forgotten_session_is_reported() {
        let now = crate::testing::test_now();
        let mut b = Broker::new(BrokerConfig::default());
        let player = connect(&mut b, now);
        play(&mut b, now, player, "cam");
        // Forget the session without unsubscribing it: the bug the check
        // exists to catch.
        b.sessions.remove(&player);
        let err = b.check_invariants().unwrap_err();
        assert!(err.contains("subscriber"), "{err}");
    }

    #[test]
    fn wrong_published_count_is_reported() {
        let now = crate::testing::test_now();
        let mut b = Broker::new(BrokerConfig::default());
        let publisher = connect(&mut b, now);
        publish(&mut b, now, publisher, "cam");
        b.published += 1;
        assert!(b.check_invariants().is_err());
    }
}
