//! Build script. Its only job so far: derive the Kubernetes protobuf schema table used by
//! `src/object/protobuf/` (see `src/object/protobuf/schema_gen.rs`). Needs no `protoc`.

#[path = "src/object/protobuf/schema_gen.rs"]
mod protobuf_schema;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/object/protobuf/schema_gen.rs");
    protobuf_schema::generate();
}
