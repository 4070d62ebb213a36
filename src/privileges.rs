// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Dropping privileges before serving: supplementary groups, capabilities, no-new-privs.
//!
//! A read-only server needs one capability at most: `CAP_DAC_READ_SEARCH`, so that root can
//! read files and list directories whatever their mode (as before dropping). Nothing is
//! written, no ownership is changed and no credentials are switched: fuse-backend-rs switches
//! uid/gid (`set_creds`) only for create/mkdir/mknod/symlink/link, which the read-only layer
//! refuses before they reach it.

use std::collections::HashSet;

use caps::{CapSet, Capability, CapsHashSet};

use crate::sandbox_sys as ssys;

/// The capabilities kept (when the process has them at all).
pub const KEPT_CAPABILITIES: [Capability; 1] = [Capability::CAP_DAC_READ_SEARCH];

/// Errors dropping privileges.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// setgroups failed.
    #[error("cannot drop the supplementary groups")]
    Groups(#[source] std::io::Error),
    /// A capability set could not be changed.
    #[error("cannot reduce the {0} capability set: {1}")]
    Caps(&'static str, String),
    /// prctl(PR_SET_NO_NEW_PRIVS) failed.
    #[error("cannot set no-new-privileges")]
    NoNewPrivs(#[source] std::io::Error),
}

/// Drops supplementary groups (as root), reduces every capability set to
/// [`KEPT_CAPABILITIES`] and sets no-new-privs. Must run before any thread is spawned:
/// capabilities are per thread.
pub fn drop_privileges() -> Result<(), PrivilegeError> {
    if ssys::geteuid() == 0 {
        ssys::clear_supplementary_groups().map_err(PrivilegeError::Groups)?;
    }
    reduce_capabilities()?;
    ssys::set_no_new_privs().map_err(PrivilegeError::NoNewPrivs)
}

fn caps_err(set: &'static str) -> impl Fn(caps::errors::CapsError) -> PrivilegeError {
    move |e| PrivilegeError::Caps(set, e.to_string())
}

fn reduce_capabilities() -> Result<(), PrivilegeError> {
    let kept: CapsHashSet = KEPT_CAPABILITIES.into_iter().collect();
    let permitted = caps::read(None, CapSet::Permitted).map_err(caps_err("permitted"))?;
    let effective = caps::read(None, CapSet::Effective).map_err(caps_err("effective"))?;
    // The bounding set can only shrink with CAP_SETPCAP; shrink it first, while we have it.
    if effective.contains(&Capability::CAP_SETPCAP) {
        let bounding = caps::read(None, CapSet::Bounding).map_err(caps_err("bounding"))?;
        for cap in bounding.difference(&kept) {
            caps::drop(None, CapSet::Bounding, *cap).map_err(caps_err("bounding"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(caps_err("ambient"))?;
    caps::clear(None, CapSet::Inheritable).map_err(caps_err("inheritable"))?;
    let keep: HashSet<Capability> = permitted.intersection(&kept).copied().collect();
    caps::set(None, CapSet::Effective, &keep).map_err(caps_err("effective"))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(caps_err("permitted"))?;
    Ok(())
}
