//! The job kinds `worker serve` (and the scheduled Lambda drain) handles, one
//! [`JobHandler`](crate::queue::JobHandler) each: today webhooks' ([`crate::webhooks`]): the
//! fan-out of `item.created`, `item.updated` and `item.deleted`, and `webhook.deliver`.

use std::sync::Arc;

use crate::{queue::Queues, webhooks::Webhooks};

/// Registers every kind, for [`crate::serve`]'s `kinds`.
pub fn register(webhooks: Arc<Webhooks>) -> impl FnOnce(&mut Queues<'_>) {
    move |queues| webhooks.register(queues)
}
