//! The JSON request bodies of the API, parsed strictly (unknown fields are refused).

use serde::Deserialize;
use serde_json::Value;

use super::body::present;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserCreateRequest {
    pub username: String,
    pub password: String,
    pub email: String,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub extra_data: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserFindQuery {
    pub username: Option<String>,
    pub email: Option<String>,
    pub after: Option<i64>,
    pub limit: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserModifyRequest {
    #[serde(default, deserialize_with = "present")]
    pub username: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub extra_data: Option<Option<Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPasswordRequest {
    pub new_password: String,
    #[serde(default, deserialize_with = "present")]
    pub old_password: Option<Option<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserAdminRequest {
    pub admin: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionLoginRequest {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub extra_data: Option<Value>,
    /// "Remember me": the session slides by `session.remember_ttl`.
    #[serde(default)]
    pub remember: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionCheckRequest {
    pub key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsQuery {
    pub userid: Option<i64>,
    #[serde(default)]
    pub expired: bool,
    pub after: Option<i64>,
    pub limit: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsKillQuery {
    pub userid: Option<i64>,
    #[serde(default)]
    pub expired: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub after: Option<i64>,
    pub limit: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionTtlRequest {
    pub seconds: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MePasswordRequest {
    pub old_password: String,
    pub new_password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserGroupsRequest {
    pub groups: Vec<String>,
}
