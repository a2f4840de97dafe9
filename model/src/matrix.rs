//! [`Matrix`]: the user-item weights a model is built from and searched through.

use sprs::CsMatI;

/// User-item weights: rows are users, columns items; `u32` indices, `usize` row pointers.
pub type Matrix = CsMatI<f32, u32, usize>;
