//! Answers to the requests of a session that said `Hello`: account creation, login and
//! account changes, presence. Store calls run on the blocking pool.

use phoned_proto::call::check_dtmf;
use phoned_proto::ident::{check_display_name, check_password};
use phoned_proto::{AccountInfo, ErrorCode, Number, Request, Response, WireError};

use crate::calls::{CallError, Callee, Caller};
use crate::mailbox;
use crate::router::{Op, Stopped};
use crate::server::unix_ms;
use crate::session::Session;
use crate::store::{Account, NewNumber, StoreError};
use crate::throttle::Key;

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
            Request::Login { number, password } => self.login(number, password).await,
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
                let a = unblock(move || store.change_number(id, &number)).await?;
                self.shared.sync_account(id).await;
                Ok(Response::Account(self.info(&a)))
            }
            Request::ListOnline => Ok(Response::Online(self.shared.online())),
            Request::Dial { to } => self.dial(id, to).await,
            Request::SendMessage {
                client_id,
                to,
                text,
            } => self.send_message(id, client_id, to, text).await?.await,
            Request::Delivered { id: message } => self.delivered(id, message).await?.await,
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
            Request::Hello(_)
            | Request::Ping { .. }
            | Request::Provision { .. }
            | Request::Register { .. }
            | Request::Login { .. } => {
                unreachable!("handled in request()")
            }
        }
    }

    /// Applies a call request to the router; its actions go out after the response.
    async fn call_op(&mut self, op: Op) -> Answer {
        let result = self.shared.calls.op(self.sid, op).await.map_err(stopped)?;
        let actions = result.map_err(|e| match e {
            CallError::NoSuchCall => err(ErrorCode::NoSuchCall, "no such call on this device"),
            CallError::InvalidState => err(
                ErrorCode::InvalidCallState,
                "not possible in the call's current state",
            ),
        })?;
        self.after_reply.extend(actions);
        Ok(Response::Done)
    }

    /// Places a call. Outcomes that end it at once (unknown number, offline, busy) still
    /// get a call id, and arrive as its first `CallState`, like every other outcome.
    async fn dial(&mut self, me: u64, to: String) -> Answer {
        let number: Number = to
            .parse()
            .map_err(|e: phoned_proto::IdentError| err(ErrorCode::InvalidNumber, e.to_string()))?;
        let store = self.shared.store.clone();
        let callee = unblock(move || store.account_by_number(number.as_str())).await?;
        let callee = match callee {
            Some(a) if !a.disabled => Callee::Account {
                id: a.id,
                sessions: self.shared.sessions_of(a.id),
            },
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

    async fn login(&mut self, number: String, password: String) -> Answer {
        self.not_logged_in()?;
        let ip = Key::ip(self.remote.ip());
        let num = Key::Number(number.chars().take(16).collect());
        if let Err(ms) = self.shared.login_allowed(&ip, &num) {
            let mut e = err(
                ErrorCode::RateLimited,
                format!("too many failed logins; retry in {} s", ms.div_ceil(1000)),
            );
            e.retry_after_ms = Some(ms.min(u64::from(u32::MAX)) as u32);
            return Err(e);
        }
        let store = self.shared.store.clone();
        let lookup = number.clone();
        let account = if lookup.parse::<Number>().is_ok() {
            unblock(move || store.account_by_number(&lookup)).await?
        } else {
            None
        };
        let ok = self
            .shared
            .hasher
            .verify(password, account.as_ref().map(|a| a.password_hash.clone()))
            .await;
        let account = match account {
            Some(a) if ok => a,
            _ => {
                self.shared.login_failed(ip, num);
                tracing::info!("failed login");
                return Err(err(ErrorCode::InvalidCredentials, WRONG));
            }
        };
        self.shared.login_succeeded(&num);
        if account.disabled {
            return Err(err(ErrorCode::AccountDisabled, "this account is disabled"));
        }
        Ok(Response::LoggedIn(self.enter(account).await))
    }

    /// Logs this session in as `account` and announces it.
    async fn enter(&mut self, account: Account) -> AccountInfo {
        let id = account.id;
        self.account = Some(id);
        self.shared.login(self.sid, &account);
        // An admin change between our read and the hub login would otherwise wait for
        // the next revision bump.
        self.shared.sync_account(id).await;
        tracing::info!(number = %account.number, "logged in");
        // Everything that waited for this account while it was away.
        mailbox::push_pending(&self.shared, id, None).await;
        mailbox::push_receipts(&self.shared, id).await;
        self.info(&account)
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
