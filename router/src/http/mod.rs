//! HTTP glue shared by the handlers, the server and the client: how errors become responses,
//! and HTTP/1.1 framing pieces.

pub mod error;
pub mod wire;
