//! Typed calls to the recording store's service API.
//!
//! The export service and its workers reach the store only through this
//! client: over HTTP, with the service token, one subject per request, on a
//! pooled connection whose requests time out (see `crosstalk_service`).

use bytes::Bytes;
use crosstalk_model::api::{
    ErrorBody, IntrospectRequest, IntrospectResponse, LiveCheckRequest, LiveCheckResponse,
    LookupResponse, NotifyRequest, RecordingPage,
};
use crosstalk_model::{AccountId, RecordingId};
use crosstalk_service::{ApiError, HttpClient, HttpResponse, Inject, Injected};
use http::{Method, StatusCode, header};
use http_body_util::Full;
use serde::de::DeserializeOwned;

pub struct StoreClient {
    http: HttpClient,
    token: String,
    /// The `export.store_call.fails` fault point: a call fails as an
    /// unreachable store would, so the caller's own handling of that error
    /// (fail closed) is what runs.
    injected: Injected,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(format!("recording store unavailable ({what}): {e}"))
}

impl Inject for StoreClient {
    fn injected_mut(&mut self) -> &mut Injected {
        &mut self.injected
    }
}

impl StoreClient {
    pub fn new(http: HttpClient, service_token: impl Into<String>) -> Self {
        Self {
            http,
            token: service_token.into(),
            injected: Injected::default(),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse, ApiError> {
        if self.injected.fires("export.store_call.fails") {
            return Err(unavailable(path, "injected: the store did not answer"));
        }
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(body.map(Bytes::from).unwrap_or_default()))
            .map_err(ApiError::internal)?;
        self.http
            .send(request)
            .await
            .map_err(|e| unavailable(path, e))
    }

    fn decode<T: DeserializeOwned>(response: &HttpResponse, what: &str) -> Result<T, ApiError> {
        serde_json::from_slice(response.body()).map_err(|e| {
            ApiError::internal(format!("malformed answer from the store ({what}): {e}"))
        })
    }

    fn refusal(response: &HttpResponse, what: &str) -> ApiError {
        let detail = serde_json::from_slice::<ErrorBody>(response.body())
            .map(|e| e.message)
            .unwrap_or_default();
        if response.status().is_server_error() {
            unavailable(what, format!("{}: {detail}", response.status()))
        } else {
            ApiError::internal(format!(
                "the store refused {what}: {} {detail}",
                response.status()
            ))
        }
    }

    /// The account a user's store session belongs to.
    pub async fn introspect(&self, session_token: &str) -> Result<AccountId, ApiError> {
        let body = serde_json::to_vec(&IntrospectRequest {
            session_token: session_token.to_string(),
        })
        .map_err(ApiError::internal)?;
        let response = self
            .send(Method::POST, "/v1/service/introspect", Some(body))
            .await?;
        match response.status() {
            StatusCode::OK => {
                Ok(Self::decode::<IntrospectResponse>(&response, "introspect")?.account_id)
            }
            StatusCode::UNAUTHORIZED => Err(ApiError::unauthorized("unknown or expired session")),
            _ => Err(Self::refusal(&response, "introspect")),
        }
    }

    /// The open account registered under `email`, if any.
    pub async fn lookup(&self, email: &str) -> Result<Option<AccountId>, ApiError> {
        let encoded: String = email
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect();
        let response = self
            .send(
                Method::GET,
                &format!("/v1/service/lookup?email={encoded}"),
                None,
            )
            .await?;
        match response.status() {
            StatusCode::OK => Ok(Some(
                Self::decode::<LookupResponse>(&response, "lookup")?.account_id,
            )),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(Self::refusal(&response, "lookup")),
        }
    }

    /// Deliver a notification to `account`'s own feed.
    pub async fn notify(&self, account: AccountId, kind: &str, text: &str) -> Result<(), ApiError> {
        let body = serde_json::to_vec(&NotifyRequest {
            kind: kind.to_string(),
            text: text.to_string(),
        })
        .map_err(ApiError::internal)?;
        let path = format!("/v1/service/accounts/{}/notifications", account.0);
        let response = self.send(Method::POST, &path, Some(body)).await?;
        match response.status() {
            StatusCode::CREATED => Ok(()),
            StatusCode::NOT_FOUND => Err(ApiError::not_found("the account no longer exists")),
            _ => Err(Self::refusal(&response, "notify")),
        }
    }

    /// Which of `ids` `account` still has.
    pub async fn live(
        &self,
        account: AccountId,
        ids: &[RecordingId],
    ) -> Result<Vec<RecordingId>, ApiError> {
        let body = serde_json::to_vec(&LiveCheckRequest { ids: ids.to_vec() })
            .map_err(ApiError::internal)?;
        let path = format!("/v1/service/accounts/{}/recordings/live", account.0);
        let response = self.send(Method::POST, &path, Some(body)).await?;
        match response.status() {
            StatusCode::OK => Ok(Self::decode::<LiveCheckResponse>(&response, "live check")?.live),
            _ => Err(Self::refusal(&response, "live check")),
        }
    }

    /// One page of `account`'s recordings.
    pub async fn page(
        &self,
        account: AccountId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<RecordingPage, ApiError> {
        let mut path = format!(
            "/v1/service/accounts/{}/recordings?limit={limit}",
            account.0
        );
        if let Some(c) = cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let response = self.send(Method::GET, &path, None).await?;
        match response.status() {
            StatusCode::OK => Self::decode(&response, "list"),
            StatusCode::NOT_FOUND => Err(ApiError::not_found(
                "the subject's account no longer exists",
            )),
            _ => Err(Self::refusal(&response, "list")),
        }
    }

    /// One recording's audio, scoped to `account`.
    pub async fn audio(
        &self,
        account: AccountId,
        id: RecordingId,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        let path = format!(
            "/v1/service/accounts/{}/recordings/{}/audio",
            account.0, id.0
        );
        let response = self.send(Method::GET, &path, None).await?;
        match response.status() {
            StatusCode::OK => Ok(Some(response.into_body().to_vec())),
            // Deleted since it was listed.
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(Self::refusal(&response, "audio")),
        }
    }
}
