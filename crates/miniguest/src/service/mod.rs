//! What Miniguest does with a guest across its backends: where a defined
//! guest lives (`placement`), opening it there, starting, stopping and
//! restarting it (`lifecycle`), what runs and what must restart
//! (`status`), and the hook hypervisors run around its life (`hook`).
//! Commands call these; these never call commands.

pub mod credentials;
pub mod exec;
pub mod hook;
pub mod lifecycle;
pub mod placement;
pub mod status;
pub mod store_view;
pub mod upgrade;

use anyhow::Result;

use crate::backend::{self, Backend};
use crate::guest::{GuestName, Layout};
use placement::Placement;

/// A guest `create --define` put somewhere, and the backend there.
pub struct DefinedGuest {
    pub placement: Placement,
    pub backend: Box<dyn Backend>,
}

/// The defined guest `name`, if it is defined.
pub fn defined(layout: &Layout, name: &GuestName) -> Result<Option<DefinedGuest>> {
    let Some(placement) = placement::read(layout, name)? else {
        return Ok(None);
    };
    // The backend finds what it needs (a container's id map) itself, from
    // the recorded policy: every backend the same way.
    let backend = backend::open(&placement.location, placement.policy())?;
    Ok(Some(DefinedGuest { placement, backend }))
}
