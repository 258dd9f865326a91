//! Local API: the gRPC service and the translation between proto messages and the node.

pub mod caller;
pub mod convert;
pub mod grpc;
pub mod leg;
pub mod session;
pub mod token;
pub mod ws;
