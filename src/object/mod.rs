//! Objects as kapi holds them: raw JSON plus the metadata the server needs, codecs, and
//! validation.

pub mod codec;
pub mod protobuf;
pub mod raw;
pub mod validation;
