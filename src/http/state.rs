//! The HTTP layer's own state: the application core plus what only requests need (rate
//! limits, the caps on live sockets, the sign-in limits).

use std::{ops::Deref, sync::Arc};

use super::{live_sockets::LiveSockets, rate_limit::RateLimits, sign_in_limits::SignInLimits};
use crate::app::App;

/// Cheap to clone; everything inside is shared.
#[derive(Clone, Debug)]
pub struct AppState {
    pub app: App,
    pub rate_limits: Arc<RateLimits>,
    /// The caps on visitors' live sockets.
    pub live_sockets: Arc<LiveSockets>,
    /// The back office's sign-in limits.
    pub sign_in: Arc<SignInLimits>,
}

/// Handlers read the core's handles as `state.store`, and pass `&state` where a use case takes
/// `&App`: the HTTP state is the core with a few request-only parts beside it, so reading
/// through it keeps the handlers short without giving the core any HTTP part.
impl Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.app
    }
}
