//! Generated Rust code for the etcd v3 API (`etcdserverpb`, `mvccpb`, `authpb`) and
//! berth's peer protocol (`berthpb`). The `.proto` files are berth's own rendering;
//! names and field numbers match etcd's so that every etcd client works.

#![allow(clippy::all, missing_docs, unreachable_pub)]

pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

pub mod authpb {
    tonic::include_proto!("authpb");
}

pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

pub mod berthpb {
    tonic::include_proto!("berthpb");
}

pub use prost::Message;
