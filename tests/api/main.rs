//! Black-box tests: the real server on a random port against the Mattermost simulator.

mod admin;
mod admin_browser;
mod bridge;
mod browser;
mod browser_launch;
mod cleanup;
mod connection;
mod departments;
mod files;
mod helpers;
mod instances;
mod lifecycle;
mod live_details;
mod operations;
mod races;
mod sim_fidelity;
mod visitor_api;
