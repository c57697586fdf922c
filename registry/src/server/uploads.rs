//! Bounds on open upload sessions: so many per client (the logged-in user, else the remote address), per
//! repository and in all, with 429 TOOMANYREQUESTS past a cap, and sessions idle for longer than
//! [`UploadSessionLimits::idle_timeout`] cancelled by a periodic sweep. Without them anyone allowed to push could open
//! sessions until the disk or memory ran out (10,000 in 6 s), each kept until gc.
//! This is the sessions' bookkeeping; the upload endpoints themselves are `blob_upload`.
//!
//! The counts are this process's: sessions it opened, and those it found in storage when it started. A session of
//! another replica (S3) is neither counted nor expired here; one this process opened but another replica keeps
//! appending to is seen growing at the sweep and kept.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::{Extensions, StatusCode};

use super::error::ApiError;
use crate::storage::{Storage, StorageError};

/// Caps on open upload sessions and how long an idle one lives (`sealos registry serve --upload-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSessionLimits {
    /// Open sessions of one client: a user's (Basic or a token's subject) wherever they connect from, an
    /// anonymous caller's per remote IP address.
    pub per_client: usize,
    /// Open sessions in one repository.
    pub per_repository: usize,
    /// Open sessions in all.
    pub total: usize,
    /// A session without any request for this long is cancelled and its data removed.
    pub idle_timeout: Duration,
}

/// Default of [`UploadSessionLimits::per_client`].
pub const DEFAULT_PER_CLIENT: usize = 1_000;
/// Default of [`UploadSessionLimits::per_repository`].
pub const DEFAULT_PER_REPOSITORY: usize = 1_000;
/// Default of [`UploadSessionLimits::total`].
pub const DEFAULT_TOTAL: usize = 10_000;
/// Default of [`UploadSessionLimits::idle_timeout`]: 15 minutes.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

impl Default for UploadSessionLimits {
    fn default() -> Self {
        UploadSessionLimits {
            per_client: DEFAULT_PER_CLIENT,
            per_repository: DEFAULT_PER_REPOSITORY,
            total: DEFAULT_TOTAL,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// The logged-in user of a request, left in its extensions by the auth layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Principal(pub(crate) String);

/// Who a session is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Client {
    /// A logged-in user.
    User(String),
    /// An anonymous caller.
    Address(IpAddr),
    /// Served without `ConnectInfo<SocketAddr>` (not through [`super::serve`]): all anonymous callers are one.
    Unknown,
}

impl Client {
    /// The client of a request with these extensions.
    pub(crate) fn of(extensions: &Extensions) -> Client {
        if let Some(Principal(user)) = extensions.get::<Principal>() {
            return Client::User(user.clone());
        }
        match extensions.get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(addr)) => Client::Address(addr.ip()),
            None => Client::Unknown,
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Client::User(u) => format!("user `{u}`"),
            Client::Address(a) => format!("address `{a}`"),
            Client::Unknown => "anonymous clients".to_string(),
        }
    }
}

/// One tracked session.
struct Session {
    repository: String,
    /// `None` for a session found in storage at start.
    client: Option<Client>,
    last_active: Instant,
    /// Requests working on it now; a busy session never expires.
    busy: usize,
    /// Bytes it held at the last request, to notice another replica appending (`None`: not known yet).
    offset: Option<u64>,
    /// Being cancelled by the sweep: requests for it are answered BLOB_UPLOAD_UNKNOWN.
    expiring: bool,
}

#[derive(Default)]
struct State {
    sessions: HashMap<String, Session>,
    per_client: HashMap<Client, usize>,
    per_repository: HashMap<String, usize>,
    /// Sessions plus reservations not yet opened.
    open: usize,
}

impl State {
    fn count(&mut self, repository: &str, client: Option<&Client>) {
        self.open += 1;
        *self
            .per_repository
            .entry(repository.to_string())
            .or_default() += 1;
        if let Some(c) = client {
            *self.per_client.entry(c.clone()).or_default() += 1;
        }
    }

    fn uncount(&mut self, repository: &str, client: Option<&Client>) {
        self.open = self.open.saturating_sub(1);
        if let Some(n) = self.per_repository.get_mut(repository) {
            *n -= 1;
            if *n == 0 {
                self.per_repository.remove(repository);
            }
        }
        if let Some(c) = client
            && let Some(n) = self.per_client.get_mut(c)
        {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(c);
            }
        }
    }
}

/// The open upload sessions of a server, counted against [`UploadSessionLimits`].
pub(crate) struct UploadSessions {
    limits: UploadSessionLimits,
    state: Mutex<State>,
}

impl UploadSessions {
    /// No sessions yet.
    pub(crate) fn new(limits: UploadSessionLimits) -> Self {
        UploadSessions {
            limits,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many sessions are open (for `/metrics`).
    pub(crate) fn open(&self) -> usize {
        self.lock().open
    }

    /// Makes room for a new session of `client` in `repository`, or 429 TOOMANYREQUESTS naming the cap.
    pub(crate) fn reserve(
        &self,
        repository: &str,
        client: Client,
    ) -> Result<Reservation<'_>, ApiError> {
        let mut state = self.lock();
        let limits = &self.limits;
        let hint = format!(
            "finish or cancel some (DELETE their Location); sessions idle for {} are cancelled",
            humanize(limits.idle_timeout)
        );
        let refused = |what: String, limit: usize| {
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                format!("too many open upload sessions {what} (limit {limit}): {hint}"),
            ))
        };
        if state.open >= limits.total {
            return refused("on this registry".into(), limits.total);
        }
        if state.per_repository.get(repository).copied().unwrap_or(0) >= limits.per_repository {
            return refused(
                format!("in repository `{repository}`"),
                limits.per_repository,
            );
        }
        if state.per_client.get(&client).copied().unwrap_or(0) >= limits.per_client {
            return refused(format!("for {}", client.describe()), limits.per_client);
        }
        state.count(repository, Some(&client));
        Ok(Reservation {
            sessions: self,
            repository: repository.to_string(),
            client: Some(client),
        })
    }

    /// Marks session `id` of `repository` busy for one request: [`StorageError::UploadUnknown`] when the sweep
    /// is cancelling it. A session this process does not track (another replica's) passes untracked.
    pub(crate) fn begin(&self, repository: &str, id: &str) -> Result<Busy<'_>, StorageError> {
        let mut state = self.lock();
        match state
            .sessions
            .get_mut(id)
            .filter(|s| s.repository == repository)
        {
            Some(s) if s.expiring => Err(StorageError::UploadUnknown(id.to_string())),
            Some(s) => {
                s.busy += 1;
                Ok(Busy {
                    sessions: self,
                    id: Some(id.to_string()),
                })
            }
            None => Ok(Busy {
                sessions: self,
                id: None,
            }),
        }
    }

    /// Records that session `id` of `repository` holds `offset` bytes.
    pub(crate) fn grew(&self, repository: &str, id: &str, offset: u64) {
        if let Some(s) = self
            .lock()
            .sessions
            .get_mut(id)
            .filter(|s| s.repository == repository)
        {
            s.offset = Some(offset);
        }
    }

    /// Forgets session `id` of `repository` (finished, cancelled, or gone from storage). The repository must
    /// match: a request naming a session under another repository (which storage does not find there) does not
    /// make the count forget it.
    pub(crate) fn close(&self, repository: &str, id: &str) {
        let mut state = self.lock();
        if state
            .sessions
            .get(id)
            .is_some_and(|s| s.repository == repository)
            && let Some(s) = state.sessions.remove(id)
        {
            state.uncount(&s.repository, s.client.as_ref());
        }
    }

    /// Counts the sessions `storage` holds that this process does not know (left by an earlier run), as idle
    /// from now.
    pub(crate) async fn adopt_stored(&self, storage: &dyn Storage) {
        let stored = match storage.list_uploads().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "listing upload sessions left by an earlier run");
                return;
            }
        };
        let mut state = self.lock();
        for (repository, id, _age) in stored {
            if state.sessions.contains_key(&id) {
                continue;
            }
            state.count(&repository, None);
            state.sessions.insert(
                id,
                Session {
                    repository,
                    client: None,
                    last_active: Instant::now(),
                    busy: 0,
                    offset: None,
                    expiring: false,
                },
            );
        }
    }

    /// Cancels the sessions idle for longer than the idle timeout; returns how many.
    pub(crate) async fn sweep(&self, storage: &dyn Storage) -> usize {
        let idle: Vec<(String, String, Option<u64>)> = {
            let mut state = self.lock();
            let timeout = self.limits.idle_timeout;
            state
                .sessions
                .iter_mut()
                .filter(|(_, s)| s.busy == 0 && !s.expiring && s.last_active.elapsed() >= timeout)
                .map(|(id, s)| {
                    s.expiring = true;
                    (id.clone(), s.repository.clone(), s.offset)
                })
                .collect()
        };
        let mut cancelled = 0;
        for (id, repository, offset) in idle {
            // Another replica may be the one receiving its chunks: a session that grew is kept.
            match storage.upload_status(&repository, &id).await {
                Ok(status) if offset.is_some_and(|o| o != status.offset) => {
                    let mut state = self.lock();
                    if let Some(s) = state.sessions.get_mut(&id) {
                        s.expiring = false;
                        s.offset = Some(status.offset);
                        s.last_active = Instant::now();
                    }
                    continue;
                }
                Ok(_) => match storage.cancel_upload(&repository, &id).await {
                    Ok(()) => {
                        cancelled += 1;
                        tracing::info!(repository, id, "cancelled an idle upload session");
                    }
                    Err(StorageError::UploadUnknown(_)) => {}
                    Err(e) => {
                        tracing::warn!(repository, id, error = %e, "cancelling an idle upload session")
                    }
                },
                Err(StorageError::UploadUnknown(_)) => {}
                Err(e) => {
                    tracing::warn!(repository, id, error = %e, "reading an idle upload session");
                }
            }
            self.close(&repository, &id);
        }
        cancelled
    }

    /// How often [`UploadSessions::sweep`] runs: a quarter of the idle timeout, between 50 ms and a minute.
    pub(crate) fn sweep_interval(&self) -> Duration {
        (self.limits.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(60))
    }
}

/// Room for one session, counted until it is opened or dropped.
pub(crate) struct Reservation<'a> {
    sessions: &'a UploadSessions,
    repository: String,
    client: Option<Client>,
}

impl<'a> Reservation<'a> {
    /// Records the session created in the reserved room, busy for the current request.
    pub(crate) fn open(mut self, id: &str) -> Busy<'a> {
        let sessions = self.sessions;
        let mut state = sessions.lock();
        state.sessions.insert(
            id.to_string(),
            Session {
                repository: std::mem::take(&mut self.repository),
                client: self.client.take(),
                last_active: Instant::now(),
                busy: 1,
                offset: Some(0),
                expiring: false,
            },
        );
        drop(state);
        // Counted already: the reservation's count now belongs to the session.
        std::mem::forget(self);
        Busy {
            sessions,
            id: Some(id.to_string()),
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.sessions
            .lock()
            .uncount(&self.repository, self.client.as_ref());
    }
}

/// A request working on a session: while it lives the session does not expire; when it ends the session's idle
/// time starts again.
pub(crate) struct Busy<'a> {
    sessions: &'a UploadSessions,
    id: Option<String>,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if let Some(id) = &self.id
            && let Some(s) = self.sessions.lock().sessions.get_mut(id)
        {
            s.busy = s.busy.saturating_sub(1);
            s.last_active = Instant::now();
        }
    }
}

/// `90s`, `15m`, `1h30m`: how `--upload-idle-timeout` is written.
fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Client {
        Client::User(name.into())
    }

    #[test]
    fn caps_per_client_repository_and_total_are_enforced_and_released() {
        let sessions = UploadSessions::new(UploadSessionLimits {
            per_client: 2,
            per_repository: 3,
            total: 4,
            idle_timeout: Duration::from_secs(60),
        });
        let a1 = sessions.reserve("r", user("a")).unwrap().open("1");
        let _a2 = sessions.reserve("r", user("a")).unwrap().open("2");
        let e = sessions.reserve("s", user("a")).err().unwrap();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(e.message.contains("user `a` (limit 2)"), "{}", e.message);
        let _b1 = sessions.reserve("r", user("b")).unwrap().open("3");
        let e = sessions.reserve("r", user("b")).err().unwrap();
        assert!(
            e.message.contains("repository `r` (limit 3)"),
            "{}",
            e.message
        );
        let _b2 = sessions.reserve("s", user("b")).unwrap().open("4");
        let e = sessions.reserve("t", user("c")).err().unwrap();
        assert!(
            e.message.contains("on this registry (limit 4)"),
            "{}",
            e.message
        );
        assert_eq!(sessions.open(), 4);
        drop(a1);
        // Naming it under another repository does not end it.
        sessions.close("s", "1");
        assert_eq!(sessions.open(), 4);
        sessions.close("r", "1");
        assert_eq!(sessions.open(), 3);
        // A reservation dropped before its session was opened gives its room back.
        drop(sessions.reserve("s", user("a")).unwrap());
        assert_eq!(sessions.open(), 3);
        assert!(sessions.reserve("s", user("a")).is_ok());
    }

    #[test]
    fn durations_are_written_as_the_flag_takes_them() {
        assert_eq!(humanize(Duration::from_secs(900)), "15m");
        assert_eq!(humanize(Duration::from_secs(5400)), "1h30m");
        assert_eq!(humanize(Duration::from_millis(300)), "300ms");
    }
}
