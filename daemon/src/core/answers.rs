//! What the core does with the relay's answer to a request it issued: each request is
//! sent for a [`Purpose`], kept under its token until answered, timed out or lost with
//! the link.

use phoned_proto::Response;

use super::{Core, CoreError, Effect, Remember, Reply, ReplyTo, unexpected};
use crate::call::engine::Local;

/// Why the core sent a request: what to do with the answer.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Purpose {
    /// A call request; `dial` answers carry the relay's call id.
    Call {
        local: Local,
        dial: bool,
    },
    /// A conference request: `create` answers carry the room's id; the caller waits for
    /// the relay's answer and gets the conference's call.
    Conference {
        local: Local,
        create: bool,
        reply: Option<ReplyTo>,
    },
    ChangeNumber(Option<ReplyTo>),
    SetDisplayName(Option<ReplyTo>),
    /// Telling the relay the name a reload set.
    PushName(String),
    SetPassword(Option<ReplyTo>, String),
    /// Someone else's request, answered as it came.
    Forward(Option<ReplyTo>),
}
impl Core {
    pub(super) fn answer(
        &mut self,
        now_ms: u64,
        purpose: Purpose,
        result: Result<Response, CoreError>,
    ) {
        match purpose {
            Purpose::Call { local, dial } => match result {
                Ok(Response::CallPlaced { call }) if dial => {
                    let out = self.engine.placed(local, call);
                    self.run_calls(now_ms, out);
                }
                Ok(_) => {}
                Err(e) if e.is_transient() => {
                    let out = self.engine.request_failed(local, now_ms);
                    self.run_calls(now_ms, out);
                }
                // The relay ends the call itself if it must; a refused request changes
                // nothing.
                Err(_) => {}
            },
            Purpose::Conference {
                local,
                create,
                reply,
            } => match result {
                Ok(Response::ConferencePlaced { conference }) => {
                    // The call is the room before the answer goes out: its `Conference`
                    // object is announced first.
                    let out = if create {
                        self.engine.placed(local, conference)
                    } else {
                        self.engine.room_placed(local, conference)
                    };
                    self.run_calls(now_ms, out);
                    self.reply(reply, Ok(Reply::Call(local)));
                }
                Ok(Response::Done) => self.reply(reply, Ok(Reply::Done)),
                Ok(other) => self.reply(reply, Err(unexpected(&other))),
                Err(e) => {
                    if create {
                        let out = self.engine.request_failed(local, now_ms);
                        self.run_calls(now_ms, out);
                    }
                    self.reply(reply, Err(e));
                }
            },
            Purpose::ChangeNumber(reply) => {
                let result = match result {
                    Ok(Response::Account(info)) => {
                        let number = info.number.clone();
                        self.set_account(info);
                        Ok(Reply::Number(number))
                    }
                    Ok(other) => Err(unexpected(&other)),
                    Err(e) => Err(e),
                };
                self.reply(reply, result);
            }
            Purpose::SetDisplayName(reply) => {
                let result = match result {
                    Ok(Response::Account(info)) => {
                        self.set_account(info);
                        Ok(Reply::Done)
                    }
                    Ok(other) => Err(unexpected(&other)),
                    Err(e) => Err(e),
                };
                self.reply(reply, result);
            }
            Purpose::PushName(name) => {
                if let Ok(Response::Account(info)) = result {
                    if self.name_pending.as_deref() == Some(name.as_str()) {
                        self.name_pending = None;
                    }
                    self.set_account(info);
                }
            }
            Purpose::SetPassword(reply, password) => {
                let result = match result {
                    Ok(Response::Done) => {
                        if self.config.credentials.is_none() {
                            self.push(Effect::Remember(Remember::Password(password)));
                        }
                        Ok(Reply::Done)
                    }
                    Ok(other) => Err(unexpected(&other)),
                    Err(e) => Err(e),
                };
                self.reply(reply, result);
            }
            Purpose::Forward(reply) => self.reply(reply, result.map(Reply::Response)),
        }
    }
}
