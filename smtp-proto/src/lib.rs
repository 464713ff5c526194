//! smtp-proto: a sans-IO SMTP client core.
#![forbid(unsafe_code)]

pub mod auth;
pub mod body;
pub mod capability;
pub mod command;
pub mod framer;
pub mod path;
pub mod reply;
