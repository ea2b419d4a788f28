//! Build script. Its only job so far: derive the Kubernetes protobuf schema table used by
//! `src/object/protobuf/` (see `build/protobuf_schema.rs`). Needs no `protoc`.

#[path = "build/protobuf_schema.rs"]
mod protobuf_schema;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=build/protobuf_schema.rs");
    protobuf_schema::generate();
}
