//! HTTP glue shared by the handlers: how errors become responses.

pub mod error;
