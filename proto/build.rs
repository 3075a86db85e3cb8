//! Compiles the etcd v3 API and the peer protocol with the protoc that ships in
//! `protoc-bin-vendored`, so a fresh machine needs only the Rust toolchain.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos: Vec<PathBuf> = ["etcd/kv.proto", "etcd/auth.proto", "etcd/rpc.proto", "berth/raft.proto"]
        .into_iter()
        .map(PathBuf::from)
        .collect();
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }
    let includes = [PathBuf::from("."), protoc_bin_vendored::include_path()?];
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_with_config(config, &protos, &includes)?;
    Ok(())
}
