//! How the core follows the link: connecting, online, offline, request deadlines, and
//! the events the relay pushes (presence, account, calls, and the messages, files and
//! receipts it hands to their adapters).

use phoned_proto::state::ConnectionState;
use phoned_proto::{AccountInfo, Event};

use super::{
    BTreeMap, Change, Core, CoreError, Effect, ErrorKind, LinkEvent, Purpose, Remember, Token,
};
use crate::call::engine::Policy;

impl Core {
    pub(super) fn link(&mut self, now_ms: u64, event: LinkEvent) {
        match event {
            LinkEvent::Connecting => {
                self.status.connection = ConnectionState::Connecting;
                self.change(Change::Connection);
            }
            LinkEvent::Online { account, online } => {
                let own = account.number.clone();
                let fresh: BTreeMap<String, String> =
                    online.into_iter().filter(|(n, _)| *n != own).collect();
                self.status.connection = ConnectionState::Online;
                self.status.last_error.clear();
                self.status.account = Some(account);
                self.status.online = fresh.clone();
                for (number, name) in fresh {
                    self.change(Change::Presence {
                        number,
                        name,
                        online: true,
                    });
                }
                self.change(Change::Connection);
                self.change(Change::Account);
                self.push(Effect::FlushOutbox);
                self.push_pending_name(now_ms);
            }
            LinkEvent::Offline { why } => self.offline(now_ms, why),
            LinkEvent::Relay {
                event,
                caller_known,
            } => self.event(now_ms, event, caller_known),
        }
    }

    /// The link is down: calls end, requests in flight fail, nobody is known online.
    fn offline(&mut self, now_ms: u64, why: Option<String>) {
        let out = self.engine.link_lost(now_ms);
        self.status.connection = ConnectionState::Offline;
        if let Some(w) = why {
            self.status.last_error = w;
        }
        let mut waiting: Vec<(Token, Purpose)> = self
            .requests
            .drain()
            .map(|(token, (purpose, _))| (token, purpose))
            .collect();
        waiting.sort_by_key(|(token, _)| *token);
        for (_, purpose) in waiting {
            self.answer(now_ms, purpose, Err(CoreError::offline("the link dropped")));
        }
        self.run_calls(now_ms, out);
        let gone = std::mem::take(&mut self.status.online);
        for (number, name) in gone {
            self.change(Change::Presence {
                number,
                name,
                online: false,
            });
        }
        self.change(Change::Connection);
    }

    pub(super) fn expire(&mut self, now_ms: u64) {
        let mut late: Vec<Token> = self
            .requests
            .iter()
            .filter(|(_, (_, at))| *at <= now_ms)
            .map(|(t, _)| *t)
            .collect();
        late.sort_unstable();
        for token in late {
            if let Some((purpose, _)) = self.requests.remove(&token) {
                let e = CoreError::new(ErrorKind::Timeout, "the relay did not answer in 10 s");
                self.answer(now_ms, purpose, Err(e));
            }
        }
    }

    fn event(&mut self, now_ms: u64, event: Event, caller_known: bool) {
        match event {
            Event::Presence {
                number,
                name,
                online,
            } => {
                if self
                    .status
                    .account
                    .as_ref()
                    .is_some_and(|a| a.number == number)
                {
                    return;
                }
                if online {
                    self.status.online.insert(number.clone(), name.clone());
                } else {
                    self.status.online.remove(&number);
                }
                self.change(Change::Presence {
                    number,
                    name,
                    online,
                });
            }
            Event::AccountChanged(info) => self.set_account(info),
            Event::CallIncoming {
                call,
                from_number,
                from_name,
            } => {
                let policy = Policy {
                    do_not_disturb: self.settings.do_not_disturb,
                    auto_answer: self.settings.auto_answer,
                    known_caller: caller_known,
                };
                let out = self
                    .engine
                    .incoming(call, from_number, from_name, policy, now_ms);
                self.run_calls(now_ms, out);
            }
            Event::CallState { call, phase } => {
                let out = self.engine.phase(call, phase, now_ms);
                self.run_calls(now_ms, out);
            }
            Event::CallDtmf { call, digits } => {
                let out = self.engine.dtmf_received(call, digits);
                self.run_calls(now_ms, out);
            }
            Event::CallHold {
                call,
                by_me,
                by_peer,
            } => {
                let out = self.engine.hold_state(call, by_me, by_peer);
                self.run_calls(now_ms, out);
            }
            Event::Message(m) => self.push(Effect::Message(m)),
            Event::File(f) => self.push(Effect::File(f)),
            Event::MessageDelivered { client_id, id } => {
                self.push(Effect::Delivered { client_id, id })
            }
            Event::ConferenceIncoming {
                conference,
                from_number,
                from_name,
            } => {
                let policy = Policy {
                    do_not_disturb: self.settings.do_not_disturb,
                    auto_answer: self.settings.auto_answer,
                    known_caller: caller_known,
                };
                let out = self
                    .engine
                    .invited(conference, from_number, from_name, policy, now_ms);
                self.run_calls(now_ms, out);
            }
            Event::ConferenceMoved { call, conference } => {
                let out = self.engine.moved(call, conference, now_ms);
                self.run_calls(now_ms, out);
            }
            Event::ConferenceRoster { conference, roster } => {
                // A roster that breaks what the D-Bus side relies on is not shown.
                if let Err(e) = roster.check() {
                    tracing::warn!(conference, "roster from the relay refused: {e}");
                    return;
                }
                let out = self.engine.roster(conference, roster);
                self.run_calls(now_ms, out);
            }
            // The link takes it (its UDP media path); nothing for the core.
            Event::MediaPlane { .. } => {}
        }
    }

    /// New account information from the relay; stored credentials follow it.
    pub(super) fn set_account(&mut self, info: AccountInfo) {
        let number = info.number.clone();
        self.status.account = Some(info);
        if self.config.credentials.is_none() {
            self.push(Effect::Remember(Remember::Number(number)));
        }
        self.change(Change::Account);
    }
}
