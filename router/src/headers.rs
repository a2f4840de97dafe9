//! Names of the headers the router itself reads or sets, on the client side and towards the
//! nodes.

use http::header::HeaderName;

/// Where the client would like to be served (either name), before the body's `region`.
pub const HINT_HEADERS: [HeaderName; 2] =
    [HeaderName::from_static("x-region-hint"), HeaderName::from_static("region-hint")];
/// The region that answered; the router's, overwriting a node's own.
pub const SERVED_BY: HeaderName = HeaderName::from_static("x-served-by");
/// The hinted region, when another one answered.
pub const FAILOVER_FROM: HeaderName = HeaderName::from_static("x-failover-from");
/// The request's id: the client's when valid, else a fresh one; sent on and returned.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// W3C trace context: the client's when valid, else a fresh one; sent on and returned.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// Set by the router only (a client's is dropped): the request left its residency zone
/// (`cluster_config::RESIDENCY_HEADER`).
pub const RESIDENCY: HeaderName = HeaderName::from_static(cluster_config::RESIDENCY_HEADER);
