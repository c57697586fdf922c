//! Air-gap deltas: take an inventory of what a site holds, save only what it lacks, import verified.
//!
//! - [`format`]: the inventory and delivery documents (the contract between save and import).
//! - [`inventory`]: walk a registry or a Distribution-layout directory into an [`format::Inventory`].
//! - [`plan`]: decide, per blob and manifest, whether a delivery writes it or relies on the site.
//! - [`import`]: check what a delivery relies on at the destination, then copy it in, verified and resumable.
//! - [`volumes`]: a delivery as a tar cut into volumes for removable media, checked before it is joined.

pub mod format;
pub mod import;
pub mod inventory;
pub mod plan;
pub mod volumes;
