//! Answers to the requests of a session that said `Hello`: account creation, login and
//! account changes, presence. Store calls run on the blocking pool.

use std::sync::Arc;
use std::time::Duration;

use phoned_proto::call::check_dtmf;
use phoned_proto::ident::{check_display_name, check_password};
use phoned_proto::{AccountInfo, ErrorCode, Number, Request, Response, WireError};

use crate::calls::{CallError, Callee, Caller};
use crate::conference::{Invitee, Reach};
use crate::metrics::LoginFailure;
use crate::push;
use crate::router::{Op, RoomOp, Stopped};
use crate::server::unix_ms;
use crate::session::Session;
use crate::shared::Shared;
use crate::store::{Account, NewNumber, StoreError};
use crate::throttle::{Login, Reservation};

pub(crate) type Answer = Result<Response, WireError>;

pub(crate) fn err(code: ErrorCode, message: impl Into<String>) -> WireError {
    WireError::new(code, message)
}

pub(crate) fn store_err(e: StoreError) -> WireError {
    match e {
        StoreError::NumberTaken(n) => err(ErrorCode::NumberTaken, format!("number {n} is taken")),
        StoreError::NumbersExhausted(r) => err(
            ErrorCode::NumbersExhausted,
            format!("no free number left in {r}"),
        ),
        StoreError::NotFound(_) => err(ErrorCode::SessionRevoked, "the account no longer exists"),
        StoreError::QuotaExceeded => err(
            ErrorCode::QuotaExceeded,
            "the recipient's mailbox on the relay is full",
        ),
        // PostgreSQL is down or unreachable: the relay goes on (calls in progress are not
        // affected), but nothing that needs the database works until it is back.
        StoreError::Unavailable(why) => {
            tracing::warn!("store: the database is unavailable: {why}");
            err(
                ErrorCode::Unavailable,
                "the relay's database is unavailable; try again later",
            )
        }
        // Said once in the log by the upkeep task, not once per refused write.
        e if e.is_out_of_space() => {
            tracing::debug!("store: {e}");
            crate::mailbox::out_of_space()
        }
        e => {
            tracing::error!("store: {e}");
            err(ErrorCode::Internal, "storage error on the relay")
        }
    }
}

pub(crate) async fn unblock<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, WireError> {
    blocking::unblock(f).await.map_err(store_err)
}

const WRONG: &str = "unknown number or wrong password";

impl Session {
    pub(crate) async fn request(&mut self, req: Request) -> Answer {
        match req {
            Request::Hello(_) => Err(err(ErrorCode::ProtocolViolation, "Hello was already sent")),
            Request::Ping { nonce } => Ok(Response::Pong { nonce }),
            Request::Provision { display_name } => self.provision(display_name).await,
            Request::Register {
                number,
                password,
                display_name,
            } => self.register(number, password, display_name).await,
            Request::Login { number, password } => {
                let (account, _) = self.counted_login(number, password, None).await?;
                Ok(Response::LoggedIn(account))
            }
            Request::DeviceLogin {
                number,
                password,
                token,
            } => {
                let (account, token) = self.counted_login(number, password, Some(token)).await?;
                Ok(Response::DeviceLoggedIn {
                    account,
                    token: token.unwrap_or_default(),
                })
            }
            other => {
                let Some(id) = self.account else {
                    return Err(err(ErrorCode::NotLoggedIn, "log in first"));
                };
                self.account_request(id, other).await
            }
        }
    }

    async fn account_request(&mut self, id: u64, req: Request) -> Answer {
        let store = self.shared.store.clone();
        match req {
            Request::AccountInfo => {
                let a = unblock(move || store.account(id)).await?;
                let a = a.ok_or_else(|| store_err(StoreError::NotFound(String::new())))?;
                Ok(Response::Account(self.info(&a)))
            }
            Request::SetDisplayName { name } => {
                check_display_name(&name)
                    .map_err(|e| err(ErrorCode::InvalidName, e.to_string()))?;
                let a = unblock(move || store.set_display_name(id, &name)).await?;
                self.shared.sync_account(id).await;
                Ok(Response::Account(self.info(&a)))
            }
            Request::SetPassword { password } => {
                check_password(&password)
                    .map_err(|e| err(ErrorCode::InvalidPassword, e.to_string()))?;
                let hash = self.hash(password).await?;
                unblock(move || store.set_password_hash(id, &hash, false)).await?;
                Ok(Response::Done)
            }
            Request::ChangeNumber { number } => {
                let number: Number = number.parse().map_err(|e: phoned_proto::IdentError| {
                    err(ErrorCode::InvalidNumber, e.to_string())
                })?;
                self.in_range(&number)?;
                let a = unblock(move || store.change_number(id, &number)).await?;
                self.shared.sync_account(id).await;
                Ok(Response::Account(self.info(&a)))
            }
            Request::ListOnline => Ok(Response::Online(self.shared.online())),
            Request::DeviceToken => {
                let a = unblock(move || store.account(id)).await?;
                let a = a.ok_or_else(|| store_err(StoreError::NotFound(String::new())))?;
                let token = self
                    .shared
                    .tokens
                    .issue_new(&a)
                    .map_err(|_| err(ErrorCode::Internal, "no randomness"))?;
                Ok(Response::DeviceToken { token })
            }
            Request::Dial { to } => self.dial(id, to).await,
            Request::SendMessage {
                client_id,
                to,
                text,
            } => self.send_message(id, client_id, to, text).await?.await,
            Request::Delivered { id: message } => self.delivered(id, message).await?.await,
            Request::ReceiptSeen { id: message } => self.receipt_seen(id, message).await?.await,
            Request::Answer { call } => self.call_op(Op::Answer(call)).await,
            Request::Reject { call, reason } => self.call_op(Op::Reject(call, reason)).await,
            Request::Hangup { call } => self.call_op(Op::Hangup(call)).await,
            Request::Hold { call, held } => self.call_op(Op::Hold(call, held)).await,
            Request::Dtmf { call, digits } => {
                if !check_dtmf(&digits) {
                    return Err(err(
                        ErrorCode::InvalidDtmf,
                        "DTMF digits are 0-9, *, #, A-D; at most 32",
                    ));
                }
                self.call_op(Op::Dtmf(call, digits)).await
            }
            Request::ConferenceCreate { numbers } => {
                if numbers.is_empty() || numbers.len() > phoned_proto::conference::MAX_INVITES {
                    return Err(err(
                        ErrorCode::InvalidParty,
                        "a conference invites 1 to 15 numbers",
                    ));
                }
                let mut invitees = Vec::with_capacity(numbers.len());
                for number in numbers {
                    invitees.push(self.invitee(id, number).await?);
                }
                let host = self.caller(id);
                self.room_op(RoomOp::Create { host, invitees }).await
            }
            Request::ConferenceAdd { call, number } => {
                let invitee = self.invitee(id, number).await?;
                self.room_op(RoomOp::Add { call, invitee }).await
            }
            Request::ConferenceRemove { call, number } => {
                self.call_op(Op::Remove(call, number)).await
            }
            Request::ConferenceMerge { first, second } => {
                self.room_op(RoomOp::Merge { first, second }).await
            }
            Request::Watch { silent_after_ms } => {
                let bound = u64::from(silent_after_ms).clamp(1_000, 60_000);
                self.shared
                    .sessions
                    .watch(self.sid, Duration::from_millis(bound));
                Ok(Response::Done)
            }
            Request::Hello(_)
            | Request::Ping { .. }
            | Request::Provision { .. }
            | Request::Register { .. }
            | Request::Login { .. }
            | Request::DeviceLogin { .. } => {
                unreachable!("handled in request()")
            }
        }
    }

    /// Applies a call request to the router; its actions go out after the response.
    async fn call_op(&mut self, op: Op) -> Answer {
        let result = self.shared.calls.op(self.sid, op).await.map_err(stopped)?;
        let actions = result.map_err(call_error)?;
        self.after_reply.extend(actions);
        Ok(Response::Done)
    }

    /// Applies a conference request that answers with the room's id.
    async fn room_op(&mut self, op: RoomOp) -> Answer {
        let result = self
            .shared
            .calls
            .room(self.sid, op)
            .await
            .map_err(stopped)?;
        let (conference, actions) = result.map_err(call_error)?;
        self.after_reply.extend(actions);
        Ok(Response::ConferencePlaced { conference })
    }

    /// This session as a caller or host: its number and name as others see them.
    fn caller(&self, me: u64) -> Caller {
        let (number, name) = self.shared.identity(me);
        Caller {
            session: self.sid,
            account: me,
            number,
            name,
        }
    }

    /// Resolves a number to invite into a conference: its account, and which of its
    /// devices can ring (those that speak protocol 3; only older ones online is busy).
    async fn invitee(&self, me: u64, number: String) -> Result<Invitee, WireError> {
        let parsed: Number = number
            .parse()
            .map_err(|e: phoned_proto::IdentError| err(ErrorCode::InvalidNumber, e.to_string()))?;
        let store = self.shared.store.clone();
        let found = unblock(move || store.account_by_number(parsed.as_str())).await?;
        let Some(a) = found.filter(|a| !a.disabled) else {
            return Ok(Invitee {
                number,
                name: String::new(),
                account: 0,
                reach: Reach::Unknown,
            });
        };
        if a.id == me {
            return Err(err(
                ErrorCode::InvalidParty,
                "a conference's host cannot invite its own number",
            ));
        }
        let online = self.shared.sessions_of(a.id);
        let capable = self.shared.sessions.speaking(
            online.clone(),
            phoned_proto::conference::ROOMS_SINCE_VERSION,
        );
        let reach = if online.is_empty() {
            Reach::Offline
        } else if capable.is_empty() {
            Reach::Busy
        } else {
            Reach::Ring(capable)
        };
        Ok(Invitee {
            number: a.number.clone(),
            name: a.display_name.clone(),
            account: a.id,
            reach,
        })
    }

    /// Places a call. Outcomes that end it at once (unknown number, offline, busy) still
    /// get a call id, and arrive as its first `CallState`, like every other outcome.
    async fn dial(&mut self, me: u64, to: String) -> Answer {
        let number: Number = to
            .parse()
            .map_err(|e: phoned_proto::IdentError| err(ErrorCode::InvalidNumber, e.to_string()))?;
        let store = self.shared.store.clone();
        let callee = unblock(move || store.account_by_number(number.as_str())).await?;
        let mut legs = Vec::new();
        let callee = match callee {
            Some(a) if !a.disabled => {
                let mut sessions = self.shared.sessions_of(a.id);
                // Its devices on other relays of the cluster ring through legs.
                legs = crate::cluster::link::ring_remote(&self.shared, me, &a).await;
                sessions.extend(legs.iter().copied());
                Callee::Account {
                    id: a.id,
                    sessions,
                    number: a.number.clone(),
                    name: a.display_name.clone(),
                }
            }
            _ => Callee::Unknown,
        };
        let (number, name) = self.shared.identity(me);
        let caller = Caller {
            session: self.sid,
            account: me,
            number,
            name,
        };
        let (call, actions) = self
            .shared
            .calls
            .dial(caller, callee)
            .await
            .map_err(stopped)?;
        crate::cluster::link::abandon(&self.shared, &legs, &actions);
        self.after_reply.extend(actions);
        Ok(Response::CallPlaced { call })
    }

    fn info(&self, a: &Account) -> AccountInfo {
        self.shared.info(a)
    }

    fn not_logged_in(&self) -> Result<(), WireError> {
        match self.account {
            Some(_) => Err(err(
                ErrorCode::AlreadyLoggedIn,
                "this session is already logged in",
            )),
            None => Ok(()),
        }
    }

    /// Charges this client address for creating an account.
    fn charge_creation(&self) -> Result<(), WireError> {
        self.shared.charge_creation(self.remote.ip()).map_err(|ms| {
            let mut e = err(
                ErrorCode::RateLimited,
                format!(
                    "too many new accounts from this address; retry in {} s",
                    ms.div_ceil(1000)
                ),
            );
            e.retry_after_ms = Some(ms.min(u64::from(u32::MAX)) as u32);
            e
        })
    }

    async fn hash(&self, password: String) -> Result<String, WireError> {
        self.shared
            .hasher
            .hash(password)
            .await
            .ok_or_else(|| err(ErrorCode::Internal, "password hashing failed"))
    }

    async fn provision(&mut self, display_name: String) -> Answer {
        self.not_logged_in()?;
        if !self.shared.config().allow_provision {
            return Err(err(
                ErrorCode::RegistrationClosed,
                "this relay does not hand out numbers",
            ));
        }
        check_display_name(&display_name)
            .map_err(|e| err(ErrorCode::InvalidName, e.to_string()))?;
        self.charge_creation()?;
        let secret = random_secret().map_err(|_| err(ErrorCode::Internal, "no randomness"))?;
        let hash = self.hash(secret.clone()).await?;
        let range = self.shared.config().numbers;
        let seed = random_u64().map_err(|_| err(ErrorCode::Internal, "no randomness"))?;
        let store = self.shared.store.clone();
        let account = unblock(move || {
            store.create_account(
                NewNumber::FromRange(range, seed),
                &display_name,
                &hash,
                unix_ms(),
            )
        })
        .await?;
        tracing::info!(number = %account.number, "provisioned");
        let info = self.enter(account).await;
        Ok(Response::Provisioned {
            account: info,
            secret,
        })
    }

    /// Numbers people choose (registering, changing number) come from the relay's range,
    /// as the ones it hands out do; `phone-relay admin` may still set any.
    fn in_range(&self, number: &Number) -> Result<(), WireError> {
        let range = self.shared.config().numbers;
        if range.contains(number) {
            Ok(())
        } else {
            Err(err(
                ErrorCode::InvalidNumber,
                format!("{number} is outside this relay's numbers ({range})"),
            ))
        }
    }

    async fn register(&mut self, number: String, password: String, display_name: String) -> Answer {
        self.not_logged_in()?;
        if !self.shared.config().allow_register {
            return Err(err(
                ErrorCode::RegistrationClosed,
                "this relay does not allow registration",
            ));
        }
        let number: Number = number
            .parse()
            .map_err(|e: phoned_proto::IdentError| err(ErrorCode::InvalidNumber, e.to_string()))?;
        self.in_range(&number)?;
        check_display_name(&display_name)
            .map_err(|e| err(ErrorCode::InvalidName, e.to_string()))?;
        check_password(&password).map_err(|e| err(ErrorCode::InvalidPassword, e.to_string()))?;
        self.charge_creation()?;
        let hash = self.hash(password).await?;
        let store = self.shared.store.clone();
        let account = unblock(move || {
            store.create_account(NewNumber::Exact(&number), &display_name, &hash, unix_ms())
        })
        .await?;
        tracing::info!(number = %account.number, "registered");
        Ok(Response::LoggedIn(self.enter(account).await))
    }

    /// [`Session::login`], counting a refusal by its cause for the metrics.
    async fn counted_login(
        &mut self,
        number: String,
        password: String,
        token: Option<Option<String>>,
    ) -> Result<(AccountInfo, Option<String>), WireError> {
        let result = self.login(number, password, token).await;
        if let Err(e) = &result {
            let why = match e.code {
                ErrorCode::InvalidCredentials => LoginFailure::Credentials,
                ErrorCode::RateLimited => LoginFailure::RateLimited,
                ErrorCode::AccountDisabled => LoginFailure::Disabled,
                _ => LoginFailure::Other,
            };
            self.shared.metrics.login_failed(why);
        }
        result
    }

    /// Checks `number` and `password`, within the back-off, and logs the session in.
    /// `token` is `Some` for a `DeviceLogin` (with the device's token, if it has one):
    /// then the token to keep comes back too.
    async fn login(
        &mut self,
        number: String,
        password: String,
        token: Option<Option<String>>,
    ) -> Result<(AccountInfo, Option<String>), WireError> {
        self.not_logged_in()?;
        let presented = token.as_ref().and_then(Option::as_deref);
        // A token is checked before the back-off: a valid one changes which keys the
        // attempt is held to. Without one, nothing is read before the back-off allows it.
        let mut account = None;
        if presented.is_some() {
            account = self.account_by_number(&number).await?;
        }
        let device = match (presented, &account) {
            (Some(t), Some(a)) => self.shared.tokens.verify(t, a),
            _ => None,
        };
        let attempt = Attempt::begin(
            &self.shared,
            Login {
                addr: self.remote.ip(),
                number: number.chars().take(16).collect(),
                device,
            },
        )
        .map_err(|ms| {
            let mut e = err(
                ErrorCode::RateLimited,
                format!("too many failed logins; retry in {} s", ms.div_ceil(1000)),
            );
            e.retry_after_ms = Some(ms.min(u64::from(u32::MAX)) as u32);
            e
        })?;
        if presented.is_none() {
            account = match self.account_by_number(&number).await {
                Ok(a) => a,
                Err(e) => {
                    // The relay's fault, not the client's: no failure recorded.
                    attempt.release();
                    return Err(e);
                }
            };
        }
        let ok = self
            .shared
            .hasher
            .verify(password, account.as_ref().map(|a| a.password_hash.clone()))
            .await;
        let account = match account {
            Some(a) if ok => a,
            _ => {
                attempt.finish(false);
                tracing::info!(known_device = device.is_some(), "failed login");
                return Err(err(ErrorCode::InvalidCredentials, WRONG));
            }
        };
        attempt.finish(true);
        if account.disabled {
            return Err(err(ErrorCode::AccountDisabled, "this account is disabled"));
        }
        let token = match (token, device) {
            (None, _) => None,
            (Some(_), Some(d)) => Some(self.shared.tokens.issue(&account, d)),
            (Some(_), None) => Some(
                self.shared
                    .tokens
                    .issue_new(&account)
                    .map_err(|_| err(ErrorCode::Internal, "no randomness"))?,
            ),
        };
        Ok((self.enter(account).await, token))
    }

    /// The account with `number`, if `number` is a valid number that has one.
    async fn account_by_number(&self, number: &str) -> Result<Option<Account>, WireError> {
        if number.parse::<Number>().is_err() {
            return Ok(None);
        }
        let store = self.shared.store.clone();
        let number = number.to_owned();
        unblock(move || store.account_by_number(&number)).await
    }

    /// Logs this session in as `account` and announces it.
    async fn enter(&mut self, account: Account) -> AccountInfo {
        let id = account.id;
        self.account = Some(id);
        self.shared.metrics.logins.inc();
        self.shared.login(self.sid, &account);
        // An admin change between our read and the hub login would otherwise wait for
        // the next revision bump.
        self.shared.sync_account(id).await;
        tracing::info!(number = %account.number, "logged in");
        // Everything that waited for this account while it was away.
        push::push_pending(&self.shared, id).await;
        push::push_receipts(&self.shared, id).await;
        self.info(&account)
    }
}

/// A login attempt reserved in the back-off while its password is checked. One that is
/// dropped unsettled (its connection went away mid-check) counts as a failure, so that
/// abandoning attempts gains nothing.
struct Attempt {
    shared: Arc<Shared>,
    reservation: Option<Reservation>,
}

impl Attempt {
    fn begin(shared: &Arc<Shared>, login: Login) -> Result<Attempt, u64> {
        let reservation = shared.login_begin(login)?;
        Ok(Attempt {
            shared: shared.clone(),
            reservation: Some(reservation),
        })
    }

    fn finish(mut self, success: bool) {
        if let Some(r) = self.reservation.take() {
            self.shared.login_finished(r, success);
        }
    }

    /// Gives the reservation back without an outcome (the password was not checked).
    fn release(mut self) {
        if let Some(r) = self.reservation.take() {
            self.shared.login_released(r);
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if let Some(r) = self.reservation.take() {
            self.shared.login_finished(r, false);
        }
    }
}

fn stopped(_: Stopped) -> WireError {
    err(ErrorCode::Internal, "the relay is shutting down")
}

fn random_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 18];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn random_u64() -> Result<u64, getrandom::Error> {
    getrandom::u64()
}

fn call_error(e: CallError) -> WireError {
    match e {
        CallError::NoSuchCall => err(ErrorCode::NoSuchCall, "no such call on this device"),
        CallError::InvalidState => err(
            ErrorCode::InvalidCallState,
            "not possible in the call's current state",
        ),
        CallError::NotHost => err(
            ErrorCode::NotHost,
            "only the conference's host adds and removes parties",
        ),
        CallError::Full => err(
            ErrorCode::ConferenceFull,
            "a conference holds at most 16 parties",
        ),
        CallError::InvalidParty => err(
            ErrorCode::InvalidParty,
            "that number is this device's own, already in the conference, not in it, or listed twice",
        ),
    }
}
