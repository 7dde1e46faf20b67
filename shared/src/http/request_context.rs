//! What the runtime knows about a request that HTTP itself does not carry, as neutral request
//! extensions. The host has the socket peer (`ConnectInfo`); in Lambda, `shared::lambda` turns
//! the gateway's request context into these before the chain runs, so no layer needs to know
//! about API Gateway, ALB or function-URL event types.

use std::net::IpAddr;

/// The address the gateway or load balancer received the request from (Lambda), playing the
/// part of the socket peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayPeer(pub IpAddr);

/// The ids that tie a request's log lines to the platform's own logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvocationIds {
    /// API Gateway's request id (REST and HTTP APIs, function URLs).
    pub gateway_request_id: Option<String>,
    /// The Lambda invocation's request id.
    pub invocation_id: Option<String>,
}
