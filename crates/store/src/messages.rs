//! Voice messages: sending one of one's recordings to a contact.
//!
//! A message is resolved by the contact's exact name in the sender's own
//! contact list — never by a fuzzy match — and it is delivered only after the
//! sender confirms it *naming the resolved contact's address*. Until then
//! nothing reaches anyone (the Portland 2018 Echo sent a conversation to a
//! contact it had misheard). A recipient's inbox shows the recording only
//! while its owner keeps it: deleting a recording withdraws it from every
//! inbox.
//!
//! A message can also be *spoken* ("Alexa, send this to Ann"): the capture
//! carries [`Intent::Message`](crosstalk_model::api::Intent::Message). Such a
//! message is held like a spoken purchase (`StoreConfig::hold_ms`): if the
//! same audio reached many households (broadcast media) it is suppressed and
//! can never be confirmed; otherwise it becomes pending and still waits for
//! the owner's confirmation.

use crate::schema::{
    ACCOUNTS, AUDIO, AccountRecord, BY_OWNER, CONTACTS, EMAILS, HELD_MESSAGES, INBOX, MESSAGES,
    MessageRecord, NEXT_MESSAGE, RECORDINGS, SENT,
};
use crate::store::{Store, internal, next_id, rows_of_account};
use crosstalk_model::api::{Contact, InboxItem, MessageState, MessageView, RecordingView};
use crosstalk_model::{AccountId, Recording, RecordingId};
use crosstalk_service::{ApiError, Bug};
use redb::{ReadableDatabase, ReadableTable};

/// Upper bound on one account's contacts.
pub const MAX_CONTACTS: usize = 500;

/// A sound-alike key, for the planted contact-fuzzy-match only: the first
/// letter, then the consonants of the rest without a/e/i/o/u/y/h/w/g, with
/// repeats collapsed; digits are kept. Ann = Anne, Jon = John, Lee = Leigh.
fn sound_key(name: &str) -> String {
    let mut key = String::new();
    for c in name.chars().filter(|c| c.is_alphanumeric()) {
        let c = c.to_lowercase().next().unwrap_or(c);
        if !key.is_empty() && "aeiouyhwg".contains(c) {
            continue;
        }
        if !key.ends_with(c) {
            key.push(c);
        }
    }
    key
}

fn view(m: &MessageRecord) -> MessageView {
    MessageView {
        message_id: m.id,
        state: m.state,
        recording_id: m.recording,
        resolved_contact: m.contact.clone(),
        spoken: m.spoken,
    }
}

impl Store {
    /// The email of the contact `key` (a lower-case name) resolves to in
    /// `account`'s list: exactly that name.
    fn resolve_contact(
        &self,
        txn: &redb::WriteTransaction,
        account: AccountId,
        key: &str,
    ) -> Result<Option<String>, ApiError> {
        let contacts = txn.open_table(CONTACTS).map_err(internal)?;
        if self.injected.on(Bug::ContactFuzzyMatch) {
            // contact-fuzzy-match (Portland 2018): the first contact that sounds like the name.
            let wanted = sound_key(key);
            for entry in contacts.range((account.0, "")..).map_err(internal)? {
                let (name, email) = entry.map_err(internal)?;
                let (owner, name) = name.value();
                if owner != account.0 {
                    break;
                }
                if sound_key(name) == wanted {
                    return Ok(Some(email.value().to_string()));
                }
            }
            return Ok(None);
        }
        Ok(contacts
            .get((account.0, key))
            .map_err(internal)?
            .map(|email| email.value().to_string()))
    }

    /// Add (or rename-replace) a contact in `account`'s list.
    pub fn add_contact(
        &self,
        account: AccountId,
        name: &str,
        email: &str,
    ) -> Result<Contact, ApiError> {
        let name = name.trim();
        let email = email.trim().to_ascii_lowercase();
        if name.is_empty() || name.len() > 100 {
            return Err(ApiError::bad_request("contact name must be 1 to 100 bytes"));
        }
        if !email.contains('@') || email.len() > 254 {
            return Err(ApiError::bad_request(
                "contact email is not a valid address",
            ));
        }
        let key = name.to_lowercase();
        let txn = self.db.begin_write().map_err(internal)?;
        {
            let mut contacts = txn.open_table(CONTACTS).map_err(internal)?;
            let existing = contacts
                .range((account.0, "")..)
                .map_err(internal)?
                .take_while(|e| {
                    e.as_ref()
                        .map(|(k, _)| k.value().0 == account.0)
                        .unwrap_or(false)
                });
            if existing.count() >= MAX_CONTACTS {
                return Err(ApiError::conflict("contact list is full"));
            }
            contacts
                .insert((account.0, key.as_str()), email.as_str())
                .map_err(internal)?;
        }
        txn.commit().map_err(internal)?;
        Ok(Contact {
            name: name.to_string(),
            email,
        })
    }

    pub fn contacts(&self, account: AccountId) -> Result<Vec<Contact>, ApiError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let contacts = txn.open_table(CONTACTS).map_err(internal)?;
        let mut out = Vec::new();
        for entry in contacts.range((account.0, "")..).map_err(internal)? {
            let (key, email) = entry.map_err(internal)?;
            let (owner, name) = key.value();
            if owner != account.0 {
                break;
            }
            out.push(Contact {
                name: name.to_string(),
                email: email.value().to_string(),
            });
        }
        Ok(out)
    }

    /// Resolve `contact_name` exactly in the sender's contacts and hold a
    /// pending message; nothing is delivered until [`Store::confirm_message`].
    pub fn send_message(
        &self,
        from: AccountId,
        recording: RecordingId,
        contact_name: &str,
    ) -> Result<MessageView, ApiError> {
        let now = self.clock.now_ms();
        let key = contact_name.trim().to_lowercase();
        let txn = self.db.begin_write().map_err(internal)?;
        let message = {
            if txn
                .open_table(BY_OWNER)
                .map_err(internal)?
                .get((from.0, recording.0))
                .map_err(internal)?
                .is_none()
            {
                return Err(ApiError::not_found("no such recording"));
            }
            let Some(email) = self.resolve_contact(&txn, from, &key)? else {
                crosstalk_service::probe!("store.message.no_such_contact");
                return Err(ApiError::not_found("no contact with exactly that name"));
            };
            let to = match txn
                .open_table(EMAILS)
                .map_err(internal)?
                .get(email.as_str())
                .map_err(internal)?
            {
                Some(id) => AccountId(id.value()),
                None => return Err(ApiError::not_found("that contact has no account")),
            };
            let id = next_id(&txn, NEXT_MESSAGE)?;
            let state = if self.injected.on(Bug::ContactFuzzyMatch) {
                // contact-fuzzy-match (Portland 2018): the device heard a "yes"; sent at once.
                MessageState::Delivered
            } else {
                crosstalk_service::probe!("store.message.sent_pending_confirmation");
                MessageState::Pending
            };
            let message = MessageRecord {
                id,
                from,
                to,
                recording,
                contact: Contact {
                    name: contact_name.trim().to_string(),
                    email,
                },
                state,
                created_at_ms: now,
                fingerprint: None,
                captured_at_ms: 0,
                spoken: false,
            };
            let json = serde_json::to_string(&message).map_err(internal)?;
            txn.open_table(MESSAGES)
                .map_err(internal)?
                .insert(id, json.as_str())
                .map_err(internal)?;
            txn.open_table(SENT)
                .map_err(internal)?
                .insert((from.0, id), ())
                .map_err(internal)?;
            if message.state == MessageState::Delivered {
                txn.open_table(INBOX)
                    .map_err(internal)?
                    .insert((to.0, id), ())
                    .map_err(internal)?;
            }
            message
        };
        txn.commit().map_err(internal)?;
        Ok(view(&message))
    }

    /// Deliver a pending message, if the sender's confirmation names the
    /// address it resolved to.
    pub fn confirm_message(
        &self,
        from: AccountId,
        message_id: u64,
        contact_email: &str,
    ) -> Result<MessageView, ApiError> {
        let txn = self.db.begin_write().map_err(internal)?;
        let message = {
            let mut messages = txn.open_table(MESSAGES).map_err(internal)?;
            let mut message: MessageRecord = match messages.get(message_id).map_err(internal)? {
                Some(json) => serde_json::from_str(json.value()).map_err(internal)?,
                None => return Err(ApiError::not_found("no such message")),
            };
            if message.from != from {
                crosstalk_service::probe!("store.message.confirm_not_own_refused");
                return Err(ApiError::not_found("no such message"));
            }
            if !message
                .contact
                .email
                .eq_ignore_ascii_case(contact_email.trim())
            {
                crosstalk_service::probe!("store.message.confirm_wrong_contact_refused");
                return Err(ApiError::conflict(
                    "the confirmation does not name the contact this message resolved to",
                ));
            }
            match message.state {
                MessageState::Held => {
                    crosstalk_service::probe!("store.message.confirm_still_held");
                    return Err(ApiError::conflict("this spoken message is still held"));
                }
                MessageState::SuppressedMediaEvent => {
                    crosstalk_service::probe!("store.message.confirm_broadcast_refused");
                    return Err(ApiError::conflict(
                        "this message was broadcast audio heard in many homes; it is never sent",
                    ));
                }
                MessageState::Cancelled => {
                    crosstalk_service::probe!("store.message.confirm_cancelled");
                    return Err(ApiError::conflict("this message was cancelled"));
                }
                MessageState::Pending | MessageState::Delivered => {}
            }
            if message.state == MessageState::Pending {
                // The recipient may have closed their account since; the
                // address may even belong to someone new now. Deliver only to
                // the account resolved at send time, and only if it is open.
                let accounts = txn.open_table(ACCOUNTS).map_err(internal)?;
                let recipient: Option<AccountRecord> =
                    match accounts.get(message.to.0).map_err(internal)? {
                        Some(json) => Some(serde_json::from_str(json.value()).map_err(internal)?),
                        None => None,
                    };
                if recipient.is_none_or(|a| a.closed_at_ms.is_some()) {
                    crosstalk_service::probe!("store.message.confirm_recipient_closed");
                    return Err(ApiError::gone("the recipient's account is closed"));
                }
                crosstalk_service::probe!("store.message.delivered");
                message.state = MessageState::Delivered;
                let json = serde_json::to_string(&message).map_err(internal)?;
                messages
                    .insert(message_id, json.as_str())
                    .map_err(internal)?;
                txn.open_table(INBOX)
                    .map_err(internal)?
                    .insert((message.to.0, message_id), ())
                    .map_err(internal)?;
            }
            message
        };
        txn.commit().map_err(internal)?;
        Ok(view(&message))
    }

    /// Hold the message a capture speaks, inside the ingest transaction. A
    /// name that is not exactly one of the owner's contacts, or a contact
    /// without an account, sends nothing.
    pub(crate) fn hold_spoken_message(
        &self,
        txn: &redb::WriteTransaction,
        recording: &Recording,
        print: Option<u64>,
        contact_name: &str,
    ) -> Result<(), ApiError> {
        let key = contact_name.trim().to_lowercase();
        let Some(email) = self.resolve_contact(txn, recording.owner, &key)? else {
            return Ok(());
        };
        let Some(to) = txn
            .open_table(EMAILS)
            .map_err(internal)?
            .get(email.as_str())
            .map_err(internal)?
            .map(|id| AccountId(id.value()))
        else {
            return Ok(());
        };
        let id = next_id(txn, NEXT_MESSAGE)?;
        let message = MessageRecord {
            id,
            from: recording.owner,
            to,
            recording: recording.id,
            contact: Contact {
                name: contact_name.trim().to_string(),
                email,
            },
            state: MessageState::Held,
            created_at_ms: recording.received_at_ms,
            fingerprint: print,
            captured_at_ms: recording.captured_at_ms,
            spoken: true,
        };
        let json = serde_json::to_string(&message).map_err(internal)?;
        txn.open_table(MESSAGES)
            .map_err(internal)?
            .insert(id, json.as_str())
            .map_err(internal)?;
        txn.open_table(SENT)
            .map_err(internal)?
            .insert((recording.owner.0, id), ())
            .map_err(internal)?;
        txn.open_table(HELD_MESSAGES)
            .map_err(internal)?
            .insert(id, ())
            .map_err(internal)?;
        Ok(())
    }

    /// Decide held spoken messages whose hold has passed, inside the
    /// sweeper's transaction: `is_media_event(print, captured, received)`
    /// says whether the audio was broadcast. Returns how many were decided.
    pub(crate) fn sweep_held_messages(
        txn: &redb::WriteTransaction,
        now: u64,
        hold_ms: u64,
        mut is_media_event: impl FnMut(u64, u64, u64) -> Result<bool, ApiError>,
    ) -> Result<usize, ApiError> {
        let mut held = txn.open_table(HELD_MESSAGES).map_err(internal)?;
        let mut messages = txn.open_table(MESSAGES).map_err(internal)?;
        let recordings = txn.open_table(RECORDINGS).map_err(internal)?;
        let mut ids = Vec::new();
        for entry in held.iter().map_err(internal)? {
            ids.push(entry.map_err(internal)?.0.value());
        }
        let mut decided = 0;
        for id in ids {
            let mut message: MessageRecord = match messages.get(id).map_err(internal)? {
                Some(json) => serde_json::from_str(json.value()).map_err(internal)?,
                None => return Err(ApiError::internal("held message without record")),
            };
            if message.created_at_ms.saturating_add(hold_ms) > now {
                continue;
            }
            message.state = if recordings
                .get(message.recording.0)
                .map_err(internal)?
                .is_none()
            {
                crosstalk_service::probe!("store.message.held_cancelled_deleted");
                MessageState::Cancelled
            } else if let Some(print) = message.fingerprint
                && is_media_event(print, message.captured_at_ms, message.created_at_ms)?
            {
                crosstalk_service::probe!("store.message.held_suppressed_media_event");
                MessageState::SuppressedMediaEvent
            } else {
                crosstalk_service::probe!("store.message.held_pending_confirmation");
                MessageState::Pending
            };
            let json = serde_json::to_string(&message).map_err(internal)?;
            messages.insert(id, json.as_str()).map_err(internal)?;
            held.remove(id).map_err(internal)?;
            decided += 1;
        }
        Ok(decided)
    }

    /// Every message `account` sent or spoke, oldest first, in any state.
    pub fn outgoing_messages(&self, account: AccountId) -> Result<Vec<MessageView>, ApiError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let sent: Vec<MessageRecord> =
            rows_of_account(&txn, SENT, MESSAGES, account, "sent index without message")?;
        let mut out = Vec::new();
        for message in sent {
            if message.from != account {
                return Err(ApiError::internal("sent index and message disagree"));
            }
            out.push(view(&message));
        }
        Ok(out)
    }

    /// Messages delivered to `account` whose recordings still exist.
    pub fn inbox(&self, account: AccountId) -> Result<Vec<InboxItem>, ApiError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let inbox: Vec<MessageRecord> =
            rows_of_account(&txn, INBOX, MESSAGES, account, "inbox without message")?;
        let recordings = txn.open_table(RECORDINGS).map_err(internal)?;
        let mut out = Vec::new();
        for message in inbox {
            if message.to != account || message.state != MessageState::Delivered {
                return Err(ApiError::internal("inbox entry for another recipient"));
            }
            let Some(json) = recordings.get(message.recording.0).map_err(internal)? else {
                continue; // Deleted by its owner: withdrawn.
            };
            let recording: Recording = serde_json::from_str(json.value()).map_err(internal)?;
            if recording.owner != message.from {
                return Err(ApiError::internal("message recording changed owner"));
            }
            out.push(InboxItem {
                message_id: message.id,
                from: message.from,
                recording: RecordingView::from(&recording),
            });
        }
        Ok(out)
    }

    /// The audio of a message delivered to `account`.
    pub fn inbox_audio(&self, account: AccountId, message_id: u64) -> Result<Vec<u8>, ApiError> {
        let txn = self.db.begin_read().map_err(internal)?;
        if txn
            .open_table(INBOX)
            .map_err(internal)?
            .get((account.0, message_id))
            .map_err(internal)?
            .is_none()
        {
            crosstalk_service::probe!("store.message.inbox_audio_not_own_refused");
            return Err(ApiError::not_found("no such message"));
        }
        let json = txn
            .open_table(MESSAGES)
            .map_err(internal)?
            .get(message_id)
            .map_err(internal)?
            .ok_or_else(|| ApiError::internal("inbox without message"))?
            .value()
            .to_string();
        let message: MessageRecord = serde_json::from_str(&json).map_err(internal)?;
        let audio = txn.open_table(AUDIO).map_err(internal)?;
        match audio.get(message.recording.0).map_err(internal)? {
            Some(bytes) => Ok(bytes.value().to_vec()),
            None => {
                crosstalk_service::probe!("store.message.inbox_audio_deleted");
                Err(ApiError::not_found("the sender deleted this recording"))
            }
        }
    }
}
