//! The C API. (Filled in by the C API work.)
#![allow(unsafe_code)]
