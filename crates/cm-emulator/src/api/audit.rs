//! Client log records: `/v1/audit/client-records`. The emulator keeps at most
//! `EmulatorConfig::max_client_records` of them (the oldest uploads are dropped and counted).

use super::query::{Resource, found, list_response_with, listed};
use super::wire::RecordsUpload;
use super::*;
use crate::state::{ClientRecord, ClientRecordBatch};
use crate::util::uuid_v4;

/// The list filters for records (invented).
const RECORD_FILTERS: &[&str] = &["client_id", "client_name", "level", "message_id"];

impl Api {
    /// `POST /v1/audit/client-records`: client bearer, bound to the TLS client certificate.
    pub(super) fn upload_records(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        let index = self.require_bound_client(&state, request)?;
        let body: RecordsUpload = wire::parse(&request.body)?;
        let client = &state.clients[index];
        let now = self.now_seconds();
        let records: Vec<ClientRecord> = body
            .records
            .into_iter()
            .map(|record| ClientRecord {
                id: uuid_v4(),
                client_id: client.id.clone(),
                client_name: client.name.clone(),
                created_at: now,
                time: record.time,
                level: record.level,
                component: record.component,
                message_id: record.message_id.unwrap_or_default(),
                message: record.message,
            })
            .collect();
        let accepted = records.len();
        if accepted > 0 {
            let batch = ClientRecordBatch {
                sequence: state.next_sequence(),
                id: uuid_v4(),
                records,
            };
            state.add_records(batch).map_err(ApiError::storage)?;
        }
        respond(201, json!({"accepted": accepted}))
    }

    /// The list carries `"dropped"`: how many records were dropped since start to stay under
    /// the cap (invented).
    pub(super) fn list_records(
        &self,
        _admin: Admin,
        request: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let state = self.lock();
        let query = request.query();
        let items = listed(&query, state.records(), ClientRecord::to_json);
        list_response_with(
            &query,
            items,
            Some(("dropped", json!(state.records_dropped))),
        )
    }

    pub(super) fn get_record(
        &self,
        _admin: Admin,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let state = self.lock();
        let record = found(state.records(), reference)?;
        respond(200, record.to_json())
    }
}

impl Resource for ClientRecord {
    const KIND: &'static str = "client record";
    const FILTERS: &'static [&'static str] = RECORD_FILTERS;

    fn answers_to(&self, reference: &str) -> bool {
        self.id == reference || self.uri() == reference
    }

    fn filter_field(&self, filter: &str) -> Option<std::borrow::Cow<'_, str>> {
        match filter {
            "client_id" => Some(self.client_id.as_str().into()),
            "client_name" => Some(self.client_name.as_str().into()),
            "level" => Some(self.level.as_str().into()),
            "message_id" => Some(self.message_id.as_str().into()),
            _ => None,
        }
    }
}
