//! Error answers in CM's shape: `{"code","codeDesc","message","requestID"}`.
//!
//! `codeDesc` is written as CM writes it, `"<name>: <description>"` (for example
//! `"NCERRResourceNotFound: Resource not found"`). The numeric codes of not found (16), bad
//! request (15), invalid parameter (9) and unauthorized access (5) are public; the others are
//! invented (from 100 up, so they cannot collide with a public one) and listed in
//! `docs/protocol.md`. Clients should match on the name at the start of `codeDesc`.

use serde_json::json;

use super::ApiResponse;
use crate::util::uuid_v4;

/// One error kind: its `codeDesc` name, the description after the colon, the numeric code.
struct Kind {
    name: &'static str,
    description: &'static str,
    code: u32,
}

/// Every error the emulator answers with. Public names and codes first.
const KINDS: &[Kind] = &[
    Kind {
        name: "NCERRUnauthorizedAccess",
        description: "Unauthorized access",
        code: 5,
    },
    Kind {
        name: "NCERRInvalidParamValue",
        description: "Invalid parameter value",
        code: 9,
    },
    Kind {
        name: "NCERRBadRequest",
        description: "Bad request",
        code: 15,
    },
    Kind {
        name: "NCERRResourceNotFound",
        description: "Resource not found",
        code: 16,
    },
    // Public name (Thales's Ansible collection matches on it), invented code.
    Kind {
        name: "NCERRConflict",
        description: "Conflict",
        code: 100,
    },
    // Invented.
    Kind {
        name: "NCERRForbidden",
        description: "Forbidden",
        code: 101,
    },
    Kind {
        name: "NCERRRequestTooLarge",
        description: "Request too large",
        code: 102,
    },
    Kind {
        name: "NCERRInvalidRegToken",
        description: "Invalid registration token",
        code: 110,
    },
    Kind {
        name: "NCERRRegTokenExpired",
        description: "Registration token expired",
        code: 111,
    },
    Kind {
        name: "NCERRRegTokenExhausted",
        description: "Registration token exhausted",
        code: 112,
    },
    Kind {
        name: "NCERRClientCertificateRequired",
        description: "Client certificate required",
        code: 113,
    },
    Kind {
        name: "NCERRCertificateMismatch",
        description: "Certificate mismatch",
        code: 114,
    },
    Kind {
        name: "NCERRCertificateNotTrusted",
        description: "Certificate not trusted",
        code: 115,
    },
    Kind {
        name: "NCERRCommonNameMismatch",
        description: "Common name mismatch",
        code: 116,
    },
    Kind {
        name: "NCERRProofOfPossessionFailed",
        description: "Proof of possession failed",
        code: 117,
    },
    Kind {
        name: "NCERRCertificateNotLater",
        description: "Certificate not later",
        code: 118,
    },
    Kind {
        name: "NCERRCertificateInvalid",
        description: "Certificate invalid",
        code: 119,
    },
    Kind {
        name: "NCERRInternalServerError",
        description: "Internal server error",
        code: 120,
    },
    Kind {
        name: "NCERRRegistrationNotAllowed",
        description: "Registration not allowed",
        code: 121,
    },
];

/// An error answer. `code_desc` is the name alone (`NCERRResourceNotFound`); the answer
/// adds the description.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) code_desc: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: u16, code_desc: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code_desc,
            message: message.into(),
        }
    }

    /// 400 `NCERRBadRequest`: the body is not what the endpoint reads (malformed JSON, a
    /// missing or wrongly typed field).
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "NCERRBadRequest", message)
    }

    /// 400 `NCERRInvalidParamValue`: a field or query parameter with a value out of range.
    pub(crate) fn invalid_param(message: impl Into<String>) -> Self {
        Self::new(400, "NCERRInvalidParamValue", message)
    }

    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "NCERRUnauthorizedAccess", message)
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "NCERRForbidden", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "NCERRResourceNotFound", message)
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "NCERRConflict", message)
    }

    pub(crate) fn certificate_invalid(message: impl Into<String>) -> Self {
        Self::new(422, "NCERRCertificateInvalid", message)
    }

    pub(crate) fn not_trusted(message: impl Into<String>) -> Self {
        Self::new(403, "NCERRCertificateNotTrusted", message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "NCERRInternalServerError", message)
    }

    pub(crate) fn storage(error: std::io::Error) -> Self {
        Self::internal(format!("cannot write the state: {error}"))
    }

    fn kind(&self) -> Option<&'static Kind> {
        KINDS.iter().find(|kind| kind.name == self.code_desc)
    }

    /// The numeric `code` (see the module documentation).
    pub(crate) fn code(&self) -> u32 {
        self.kind().map_or(199, |kind| kind.code)
    }

    /// `codeDesc` as CM writes it: `"<name>: <description>"`.
    pub(crate) fn full_code_desc(&self) -> String {
        match self.kind() {
            Some(kind) => format!("{}: {}", kind.name, kind.description),
            None => self.code_desc.to_owned(),
        }
    }

    /// The response: `{"code","codeDesc","message","requestID"}`.
    pub(crate) fn into_response(self) -> ApiResponse {
        ApiResponse {
            status: self.status,
            body: Some(json!({
                "code": self.code(),
                "codeDesc": self.full_code_desc(),
                "message": self.message,
                "requestID": uuid_v4(),
            })),
            retry_after: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_desc_is_written_as_cm_writes_it() {
        let error = ApiError::not_found("no such thing");
        assert_eq!(error.code(), 16);
        assert_eq!(
            error.full_code_desc(),
            "NCERRResourceNotFound: Resource not found"
        );
        assert_eq!(ApiError::bad_request("x").code(), 15);
        assert_eq!(ApiError::invalid_param("x").code(), 9);
        assert_eq!(ApiError::unauthorized("x").code(), 5);
        let codes: std::collections::HashSet<u32> = KINDS.iter().map(|kind| kind.code).collect();
        assert_eq!(codes.len(), KINDS.len(), "codes are unique");
    }
}
