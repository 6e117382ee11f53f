//! Black-box tests: the real server on a random port against the Mattermost simulator.

mod admin;
mod admin_browser;
mod bridge;
mod browser;
mod browser_launch;
mod channel_removal;
mod cleanup;
mod client_address;
mod connection;
mod departments;
mod files;
mod helpers;
mod instances;
mod lifecycle;
mod live_caps;
mod live_details;
mod operations;
mod races;
mod signin_attacks;
mod sim_fidelity;
mod small_holes;
mod startup;
mod untrusted_text;
mod upload_room;
mod visitor_api;
mod widget_tabs;
