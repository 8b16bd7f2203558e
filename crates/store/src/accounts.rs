//! Accounts: sign-up (PBKDF2 password hashes), log-in, sessions (stored
//! as token digests), looking an open account up by email, and closing an
//! account (its recordings deleted, its email released; ids are never
//! reused).

use crate::recordings::DeleteSelection;
use crate::schema::{
    ACCOUNTS, AUDIO, AccountRecord, BY_OWNER, EMAILS, NEXT_ACCOUNT, RECORDINGS, SESSIONS,
};
use crate::store::{Store, internal, next_id, token_digest};
use crosstalk_model::{AccountId, RecordingId};
use crosstalk_service::{ApiError, Bug};
use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use sha2::Sha256;

fn password_hash(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations.max(1), &mut out);
    out
}

/// The lowest id of a closed account (for the planted recycled-account-id).
fn lowest_closed_account(txn: &WriteTransaction) -> Result<Option<u64>, ApiError> {
    let accounts = txn.open_table(ACCOUNTS).map_err(internal)?;
    for entry in accounts.iter().map_err(internal)? {
        let (id, json) = entry.map_err(internal)?;
        let record: AccountRecord = serde_json::from_str(json.value()).map_err(internal)?;
        if record.closed_at_ms.is_some() {
            return Ok(Some(id.value()));
        }
    }
    Ok(None)
}

impl Store {
    /// Create an account for `email` and a first session for it.
    pub fn signup(&self, email: &str, password: &str) -> Result<(AccountId, String), ApiError> {
        let now = self.clock.now_ms();
        let session = self.entropy.token_hex();
        let mut salt = [0u8; 16];
        self.entropy.fill(&mut salt);
        let iterations = self.config.password_iterations;
        let hash = password_hash(password, &salt, iterations);
        let txn = self.db.begin_write().map_err(internal)?;
        let id = {
            let mut emails = txn.open_table(EMAILS).map_err(internal)?;
            if emails.get(email).map_err(internal)?.is_some() {
                crosstalk_service::probe!("store.signup.email_taken");
                return Err(ApiError::conflict(
                    "an account with this email already exists",
                ));
            }
            let recycled = if self.injected.on(Bug::RecycledAccountId) {
                // recycled-account-id (Yahoo 2013): "reuse dormant ids".
                lowest_closed_account(&txn)?
            } else {
                None
            };
            let id = match recycled {
                Some(id) => id,
                None => next_id(&txn, NEXT_ACCOUNT)?,
            };
            emails.insert(email, id).map_err(internal)?;
            let record = AccountRecord {
                id: AccountId(id),
                email: email.to_string(),
                created_at_ms: now,
                closed_at_ms: None,
                password_salt: hex::encode(salt),
                password_hash: hex::encode(hash),
                password_iterations: iterations,
            };
            let json = serde_json::to_string(&record).map_err(internal)?;
            txn.open_table(ACCOUNTS)
                .map_err(internal)?
                .insert(id, json.as_str())
                .map_err(internal)?;
            txn.open_table(SESSIONS)
                .map_err(internal)?
                .insert(token_digest(&session).as_str(), id)
                .map_err(internal)?;
            id
        };
        txn.commit().map_err(internal)?;
        Ok((AccountId(id), session))
    }

    /// A new session for the open account registered under `email`, if the
    /// password is right. Unknown email and wrong password look the same.
    pub fn login(&self, email: &str, password: &str) -> Result<(AccountId, String), ApiError> {
        let refused = || ApiError::unauthorized("wrong email or password");
        let account = {
            let txn = self.db.begin_read().map_err(internal)?;
            let id = txn
                .open_table(EMAILS)
                .map_err(internal)?
                .get(email)
                .map_err(internal)?
                .map(|v| v.value());
            match id {
                Some(id) => self.account_in(&txn, AccountId(id))?,
                None => None,
            }
        };
        let Some(account) = account.filter(|a| a.closed_at_ms.is_none()) else {
            return Err(refused());
        };
        let salt = hex::decode(&account.password_salt).map_err(internal)?;
        let expected = hex::decode(&account.password_hash).map_err(internal)?;
        let presented = password_hash(password, &salt, account.password_iterations);
        let differ = presented
            .iter()
            .zip(expected.iter())
            .fold(expected.len() ^ 32, |acc, (a, b)| acc | (a ^ b) as usize);
        if differ != 0 {
            return Err(refused());
        }
        let session = self.entropy.token_hex();
        let txn = self.db.begin_write().map_err(internal)?;
        txn.open_table(SESSIONS)
            .map_err(internal)?
            .insert(token_digest(&session).as_str(), account.id.0)
            .map_err(internal)?;
        txn.commit().map_err(internal)?;
        Ok((account.id, session))
    }

    /// The account a session token belongs to.
    pub fn authenticate_session(&self, token: &str) -> Result<AccountId, ApiError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let sessions = txn.open_table(SESSIONS).map_err(internal)?;
        let id = match sessions
            .get(token_digest(token).as_str())
            .map_err(internal)?
        {
            Some(id) => AccountId(id.value()),
            None => {
                crosstalk_service::probe!("store.session.unknown");
                return Err(ApiError::unauthorized("unknown or expired session"));
            }
        };
        match self.account_in(&txn, id)? {
            Some(account) if account.closed_at_ms.is_none() => Ok(id),
            _ => {
                crosstalk_service::probe!("store.session.account_closed");
                Err(ApiError::unauthorized("unknown or expired session"))
            }
        }
    }

    /// The open account registered under `email`.
    pub fn lookup_email(&self, email: &str) -> Result<AccountId, ApiError> {
        let email = email.trim().to_ascii_lowercase();
        let txn = self.db.begin_read().map_err(internal)?;
        let id = txn
            .open_table(EMAILS)
            .map_err(internal)?
            .get(email.as_str())
            .map_err(internal)?
            .map(|v| v.value());
        match id {
            Some(id)
                if self
                    .account_in(&txn, AccountId(id))?
                    .is_some_and(|a| a.closed_at_ms.is_none()) =>
            {
                Ok(AccountId(id))
            }
            _ => Err(ApiError::not_found("no account with that email")),
        }
    }

    /// Close `account`: delete all its recordings, end its sessions and its
    /// devices' uploads, and release its email for a new account (which
    /// will get a new id: ids are never reused).
    pub fn close_account(&self, account: AccountId) -> Result<Vec<RecordingId>, ApiError> {
        let deleted = self.delete(account, DeleteSelection::All)?;
        // An upload on another thread may land between the two transactions.
        self.injected.interleave("store.close.between_transactions");
        let now = self.clock.now_ms();
        let txn = self.db.begin_write().map_err(internal)?;
        {
            let mut accounts = txn.open_table(ACCOUNTS).map_err(internal)?;
            let mut record: AccountRecord = {
                let json = accounts
                    .get(account.0)
                    .map_err(internal)?
                    .ok_or_else(|| ApiError::not_found("no such account"))?;
                serde_json::from_str(json.value()).map_err(internal)?
            };
            if record.closed_at_ms.is_none() {
                record.closed_at_ms = Some(now);
                let json = serde_json::to_string(&record).map_err(internal)?;
                accounts
                    .insert(account.0, json.as_str())
                    .map_err(internal)?;
                let mut emails = txn.open_table(EMAILS).map_err(internal)?;
                let holder = emails
                    .get(record.email.as_str())
                    .map_err(internal)?
                    .map(|v| v.value());
                if holder == Some(account.0) {
                    emails.remove(record.email.as_str()).map_err(internal)?;
                }
            }
            // Recordings that raced the first transaction go too.
            let mut index = txn.open_table(BY_OWNER).map_err(internal)?;
            let mut recordings = txn.open_table(RECORDINGS).map_err(internal)?;
            let mut audio = txn.open_table(AUDIO).map_err(internal)?;
            let mut late = Vec::new();
            for entry in index
                .range((account.0, 0)..=(account.0, u64::MAX))
                .map_err(internal)?
            {
                late.push(entry.map_err(internal)?.0.value().1);
            }
            if self.injected.on(Bug::CloseMissesLateUpload) {
                // close-misses-late-upload (Twitter 2019, Instagram 2020): "the first delete got them all".
                late.clear();
            }
            for id in late {
                index.remove((account.0, id)).map_err(internal)?;
                recordings.remove(id).map_err(internal)?;
                audio.remove(id).map_err(internal)?;
            }
        }
        txn.commit().map_err(internal)?;
        // Late recordings went too: drop everything cached for the account.
        self.evict_cached(&deleted, Some(account));
        Ok(deleted)
    }

    /// Whether `account` exists.
    pub fn account_exists(&self, account: AccountId) -> Result<bool, ApiError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let accounts = txn.open_table(ACCOUNTS).map_err(internal)?;
        Ok(accounts.get(account.0).map_err(internal)?.is_some())
    }
}
