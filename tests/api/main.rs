//! Black-box tests: the real server on a random port against the Mattermost simulator.

mod bridge;
mod browser;
mod cleanup;
mod files;
mod helpers;
mod operations;
mod visitor_api;
