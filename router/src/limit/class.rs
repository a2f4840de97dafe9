//! [`Class`]: what a request is limited as. Each class has its own buckets, so a client
//! that spent its reads can still send events.

use http::Method;

/// What a request is limited as; each class has its own buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Recommendation reads.
    Reads = 0,
    /// `POST /events`.
    Events = 1,
    /// Operator routes: `POST /failover`, `DELETE /users/{id}`.
    Admin = 2,
}

/// `POST /api/v1/recommendations/...`: the FastAPI-style routes, reads but for the two that
/// reload or clear a region's state.
const API_RECOMMENDATIONS: &str = "/api/v1/recommendations/";
const API_ADMIN: [&str; 2] = ["refresh-models", "clear-cache"];

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Reads => "reads",
            Class::Events => "events",
            Class::Admin => "admin",
        }
    }

    /// The class of a request, `None` for what is not limited (status page, `/regions`,
    /// `/metrics`, documents, and any route the router does not serve).
    pub fn of(method: &Method, path: &str) -> Option<Class> {
        if *method == Method::POST {
            return match path {
                "/recommendations" => Some(Class::Reads),
                "/events" => Some(Class::Events),
                "/failover" => Some(Class::Admin),
                p => match p.strip_prefix(API_RECOMMENDATIONS) {
                    Some(rest) if API_ADMIN.contains(&rest) => Some(Class::Admin),
                    Some(_) => Some(Class::Reads),
                    None => None,
                },
            };
        }
        (*method == Method::DELETE && path.starts_with("/users/")).then_some(Class::Admin)
    }
}
