//! What an HTTP cache layer is configured with; set through [`HttpCacheLayer`](crate::HttpCacheLayer).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use http::request::Parts;

use crate::policy::Rules;

/// Derives the per-user part of cache keys from a request.
pub(crate) type UserKey = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) rules: Rules,
    pub(crate) max_body: usize,
    pub(crate) statuses: Option<Vec<StatusCode>>,
    pub(crate) user: Option<UserKey>,
    pub(crate) cache_status: Option<String>,
    pub(crate) retention: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            rules: Rules::default(),
            max_body: 1 << 20,
            statuses: None,
            user: None,
            cache_status: Some("cache-adapters".to_owned()),
            retention: Duration::from_secs(3600),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("rules", &self.rules)
            .field("max_body", &self.max_body)
            .field("statuses", &self.statuses)
            .field("per_user", &self.user.is_some())
            .field("cache_status", &self.cache_status)
            .field("retention", &self.retention)
            .finish()
    }
}
