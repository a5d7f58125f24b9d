//! Client log records: `/v1/audit/client-records`. The emulator keeps at most
//! `EmulatorConfig::max_client_records` of them (the oldest uploads are dropped and counted).

use super::query::list_response_with;
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
        let items = state
            .records()
            .filter(|record| {
                query.matches(RECORD_FILTERS, |filter| match filter {
                    "client_id" => Some(record.client_id.as_str().into()),
                    "client_name" => Some(record.client_name.as_str().into()),
                    "level" => Some(record.level.as_str().into()),
                    "message_id" => Some(record.message_id.as_str().into()),
                    _ => None,
                })
            })
            .map(ClientRecord::to_json)
            .collect();
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
        let record = state
            .records()
            .find(|record| record.id == reference || record.uri() == reference)
            .ok_or_else(|| ApiError::not_found(format!("client record {reference:?} not found")))?;
        respond(200, record.to_json())
    }
}
