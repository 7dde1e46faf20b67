//! The job kinds this worker drains, one [`JobHandler`] each.
//!
//! `item.created`, `item.updated`, `item.deleted`: the events the items routes enqueue with
//! each change. Nothing consumes them yet (webhooks will fan them out to subscribers), so
//! their handler completes at once.

use std::marker::PhantomData;

use shared::repo::{
    items::{ItemCreated, ItemDeleted, ItemUpdated},
    jobs::Job,
};

use crate::queue::{JobError, JobHandler, Queues};

/// Registers every kind `worker serve` drains.
pub fn register(queues: &mut Queues<'_>) {
    queues
        .drain(ItemCreatedHandler::default())
        .drain(ItemUpdatedHandler::default())
        .drain(ItemDeletedHandler::default());
}

/// Completes an item event without doing anything: the place webhooks' fan-out will go.
#[derive(Debug)]
pub struct ItemEvent<J>(PhantomData<J>);

impl<J> Default for ItemEvent<J> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<J: Job> JobHandler for ItemEvent<J> {
    type Job = J;

    async fn run(&self, _event: J) -> Result<(), JobError> {
        Ok(())
    }
}

pub type ItemCreatedHandler = ItemEvent<ItemCreated>;
pub type ItemUpdatedHandler = ItemEvent<ItemUpdated>;
pub type ItemDeletedHandler = ItemEvent<ItemDeleted>;
