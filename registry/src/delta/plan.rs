//! Deciding, per blob and manifest, whether a delta delivery writes it or relies on the site having it.
//!
//! A [`DeltaPlan`] wraps the site's [`Inventory`] and is handed to the mirror engine
//! ([`crate::mirror::Mirror::with_site`]): a blob the inventory lists is not written and is recorded as relied
//! on; a manifest the inventory lists *for the same repository* is relied on too, except a tagged image's own
//! manifest, which is always written so the delivery links every tag. Everything written is recorded as
//! included; [`DeltaPlan::delivery`] turns both records into the `delivery.json` document.

use std::collections::BTreeMap;
use std::sync::Mutex;

use formats::Digest;

use super::format::{DeliveredImage, Delivery, Inventory};
use crate::mirror::{ImageJob, ImageReport, Outcome, SiteContent};

/// A delta save in progress: the site's inventory and what the delivery wrote or relied on so far.
#[derive(Debug)]
pub struct DeltaPlan {
    inventory: Inventory,
    included: Mutex<BTreeMap<Digest, u64>>,
    relied: Mutex<BTreeMap<Digest, u64>>,
}

impl DeltaPlan {
    /// A plan leaving out what `inventory` lists.
    pub fn new(inventory: Inventory) -> Self {
        DeltaPlan {
            inventory,
            included: Mutex::new(BTreeMap::new()),
            relied: Mutex::new(BTreeMap::new()),
        }
    }

    /// The site's inventory.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// The delivery document for what was recorded, listing `images`. A digest both written and relied on
    /// (a manifest the site holds in another repository) is listed as included only.
    pub fn delivery(&self, created: impl Into<String>, images: Vec<DeliveredImage>) -> Delivery {
        let included = lock(&self.included).clone();
        let relied = lock(&self.relied)
            .iter()
            .filter(|(d, _)| !included.contains_key(*d))
            .map(|(d, s)| (d.clone(), *s))
            .collect();
        let mut delivery = Delivery::new(created);
        delivery.images = images;
        delivery.included = included;
        delivery.relied = relied;
        delivery
    }
}

impl SiteContent for DeltaPlan {
    fn relies_on_blob(&self, digest: &Digest, size: u64) -> bool {
        let held = self.inventory.has_blob(digest);
        if held {
            lock(&self.relied).insert(digest.clone(), size);
        }
        held
    }

    fn relies_on_manifest(&self, repository: &str, digest: &Digest, size: u64) -> bool {
        let held = self.inventory.has_manifest(repository, digest);
        if held {
            lock(&self.relied).insert(digest.clone(), size);
        }
        held
    }

    fn wrote(&self, digest: &Digest, size: u64) {
        lock(&self.included).insert(digest.clone(), size);
    }
}

/// The images a save delivered: each job with a tag whose image was copied or already there, in job order
/// (`reports` are [`crate::mirror::Mirror::run`]'s, in the order of `jobs`).
pub fn delivered_images(jobs: &[ImageJob], reports: &[ImageReport]) -> Vec<DeliveredImage> {
    jobs.iter()
        .zip(reports)
        .filter_map(|(job, report)| {
            let digest = match &report.outcome {
                Outcome::Copied { digest, .. } | Outcome::Skipped { digest } => digest.clone(),
                Outcome::WouldCopy { .. } | Outcome::Failed(_) => return None,
            };
            Some(DeliveredImage {
                repository: job.dest_repository.clone(),
                tag: job.dest_tag.clone()?,
                digest,
            })
        })
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::format::RepositoryInventory;

    fn d(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    #[test]
    fn held_content_is_relied_on_and_the_rest_included() {
        let mut inv = Inventory::new("site", "2026-12-04T23:00:00Z");
        inv.blobs.insert(d('a'), 100);
        inv.repositories.insert(
            "app".into(),
            RepositoryInventory {
                tags: BTreeMap::new(),
                manifests: vec![d('c')],
            },
        );
        let plan = DeltaPlan::new(inv);
        assert!(plan.relies_on_blob(&d('a'), 100));
        assert!(!plan.relies_on_blob(&d('b'), 7));
        plan.wrote(&d('b'), 7);
        assert!(plan.relies_on_manifest("app", &d('c'), 300));
        assert!(!plan.relies_on_manifest("other", &d('c'), 300));
        plan.wrote(&d('c'), 300);
        let delivery = plan.delivery("now", Vec::new());
        assert_eq!(
            delivery.included,
            BTreeMap::from([(d('b'), 7), (d('c'), 300)])
        );
        assert_eq!(delivery.relied, BTreeMap::from([(d('a'), 100)]));
        assert_eq!(delivery.included_bytes(), 307);
        assert_eq!(delivery.relied_bytes(), 100);
    }
}
