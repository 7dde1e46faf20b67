//! Domain repositories: the SQL for each table, behind [`crate::db::Db`]. Every function that
//! touches a user's rows takes the owner's id and filters on it, so a handler cannot forget
//! the scoping (another user's row reads as "not found").

pub mod api_keys;
pub mod idempotency;
pub mod items;
pub mod jobs;
pub mod users;
pub mod webhook_deliveries;
pub mod webhooks;
