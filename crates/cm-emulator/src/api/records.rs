//! Client log records: `/v1/audit/client-records`.

use super::*;

impl Api {
    // ---- Client log records ---------------------------------------------------------------

    pub(super) fn upload_records(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        let (index, _) = self.require_client(&mut state, request)?;
        request.tls_leaf()?;
        let body = JsonBody::parse(&request.body)?;
        let items = body.required_array("records")?;
        let client = &state.clients[index];
        let now = self.now_seconds();
        let mut records = Vec::with_capacity(items.len());
        for (position, item) in items.iter().enumerate() {
            let field = |name: &str| format!("records[{position}].{name}");
            let record = JsonBody::from_value(item.clone(), &format!("records[{position}]"))?;
            let text = |name: &str, required: bool| -> Result<String, ApiError> {
                let value = if required {
                    record
                        .required_string(name)
                        .map(|text| Some(text.to_owned()))
                } else {
                    record
                        .optional_string(name)
                        .map(|text| text.map(str::to_owned))
                };
                value
                    .map(Option::unwrap_or_default)
                    .map_err(|error| prefix_field(error, &field("")))
            };
            records.push(ClientRecord {
                id: uuid_v4(),
                client_id: client.id.clone(),
                client_name: client.name.clone(),
                created_at: now,
                time: text("time", true)?,
                level: text("level", true)?,
                component: text("component", true)?,
                message_id: text("message_id", false)?,
                message: text("message", true)?,
            });
        }
        let accepted = records.len();
        if accepted > 0 {
            let batch = ClientRecordBatch {
                sequence: state.next_sequence(),
                id: uuid_v4(),
                records,
            };
            state
                .store
                .put(CLIENT_RECORDS, &batch.id, &batch)
                .map_err(ApiError::storage)?;
            state.records.extend(batch.records);
        }
        respond(201, json!({"accepted": accepted}))
    }

    pub(super) fn list_records(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let items = state.records.iter().map(ClientRecord::to_json).collect();
        list_response(request.query.as_deref(), items)
    }

    pub(super) fn get_record(
        &self,
        request: &ApiRequest,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let record = state
            .records
            .iter()
            .find(|record| record.id == reference || record.uri() == reference)
            .ok_or_else(|| ApiError::not_found(format!("client record {reference:?} not found")))?;
        respond(200, record.to_json())
    }
}
